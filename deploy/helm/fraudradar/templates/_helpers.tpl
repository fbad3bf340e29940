{{/* Names and labels. */}}
{{- define "fraudradar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fraudradar.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "fraudradar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "fraudradar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fraudradar
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "scorer") */}}
{{- define "fraudradar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fraudradar.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "fraudradar.componentLabels" -}}
{{ include "fraudradar.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "fraudradar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fraudradar.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fraudradar.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "fraudradar.keysSecret" -}}
{{- required "keys.existingSecret is required: a Secret with pseudonym.key and disclosure.key (fraudradar keys generate DIR)" .Values.keys.existingSecret -}}
{{- end -}}

{{/*
Environment every service shares: Kafka connection (TLS/SASL), topic prefix, logging.
Paths are those of the volumes in "fraudradar.kafkaVolumes".
*/}}
{{- define "fraudradar.commonEnv" -}}
- name: FRAUDRADAR_BOOTSTRAP
  value: {{ required "kafka.bootstrap is required (e.g. my-cluster-kafka-bootstrap.kafka:9093)" .Values.kafka.bootstrap | quote }}
- name: FRAUDRADAR_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: FRAUDRADAR_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}
- name: FRAUDRADAR_KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: FRAUDRADAR_KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
- name: FRAUDRADAR_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.sasl.passwordSecret.name is required with a SASL_* security protocol" .Values.kafka.sasl.passwordSecret.name }}
      key: {{ .Values.kafka.sasl.passwordSecret.key }}
{{- end }}
{{- if .Values.kafka.tls.caSecret.name }}
- name: FRAUDRADAR_KAFKA_SSL_CAFILE
  value: /etc/fraudradar/kafka-ca/ca.crt
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- name: FRAUDRADAR_KAFKA_SSL_CERTFILE
  value: /etc/fraudradar/kafka-client/tls.crt
- name: FRAUDRADAR_KAFKA_SSL_KEYFILE
  value: /etc/fraudradar/kafka-client/tls.key
{{- end }}
- name: FRAUDRADAR_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: FRAUDRADAR_CACHE
  value: /tmp/fraudradar
{{- end -}}

{{/* Extra env from a map (component .env values). */}}
{{- define "fraudradar.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "fraudradar.kafkaVolumeMounts" -}}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/fraudradar/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- name: kafka-client
  mountPath: /etc/fraudradar/kafka-client
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "fraudradar.kafkaVolumes" -}}
{{- if .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.caSecret.key }}
        path: ca.crt
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- name: kafka-client
  secret:
    secretName: {{ .Values.kafka.tls.clientSecret.name }}
    defaultMode: 0400
    items:
      - key: {{ .Values.kafka.tls.clientSecret.certKey }}
        path: tls.crt
      - key: {{ .Values.kafka.tls.clientSecret.keyKey }}
        path: tls.key
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{/*
The key files one component may read: (dict "ctx" $ "pseudonym" true "disclosure" false).
Least privilege: the scorer never gets the disclosure key.
*/}}
{{- define "fraudradar.keysVolume" -}}
- name: keys
  secret:
    secretName: {{ include "fraudradar.keysSecret" .ctx }}
    defaultMode: 0400
    items:
      {{- if .pseudonym }}
      - key: {{ .ctx.Values.keys.pseudonymKey }}
        path: pseudonym.key
      {{- end }}
      {{- if .disclosure }}
      - key: {{ .ctx.Values.keys.disclosureKey }}
        path: disclosure.key
      {{- end }}
{{- end -}}

{{- define "fraudradar.keysEnv" -}}
{{- if .pseudonym }}
- name: FRAUDRADAR_PSEUDONYM_KEY_FILE
  value: /etc/fraudradar/keys/pseudonym.key
{{- end }}
{{- if .disclosure }}
- name: FRAUDRADAR_DISCLOSURE_KEY_FILE
  value: /etc/fraudradar/keys/disclosure.key
{{- end }}
{{- end -}}

{{/* Liveness and readiness on the component's HTTP port. */}}
{{- define "fraudradar.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end -}}

{{- define "fraudradar.podScheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The protected caller numbers CSV (FRAUDRADAR_PROTECTED_NUMBERS_FILE), read by ingest and the
api: the name of the ConfigMap holding it (protectedNumbers.existingConfigMap, else the chart's
own when protectedNumbers.csv is set), empty when there is no list.
*/}}
{{- define "fraudradar.protectedNumbersConfigMap" -}}
{{- if .Values.protectedNumbers.existingConfigMap -}}
{{ .Values.protectedNumbers.existingConfigMap }}
{{- else if .Values.protectedNumbers.csv -}}
{{ include "fraudradar.fullname" . }}-protected-numbers
{{- end -}}
{{- end -}}

{{/* Env, mount and volume of the list; include them only when protectedNumbersConfigMap is not empty. */}}
{{- define "fraudradar.protectedNumbersEnv" -}}
- name: FRAUDRADAR_PROTECTED_NUMBERS_FILE
  value: /etc/fraudradar/protected-numbers/protected-numbers.csv
{{- end -}}

{{- define "fraudradar.protectedNumbersVolumeMount" -}}
- name: protected-numbers
  mountPath: /etc/fraudradar/protected-numbers
  readOnly: true
{{- end -}}

{{- define "fraudradar.protectedNumbersVolume" -}}
- name: protected-numbers
  configMap:
    name: {{ include "fraudradar.protectedNumbersConfigMap" . }}
    items:
      - key: {{ .Values.protectedNumbers.key }}
        path: protected-numbers.csv
{{- end -}}
