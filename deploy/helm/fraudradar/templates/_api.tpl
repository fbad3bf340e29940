{{/*
Pod spec of the partner API, shared by the autoscaled lookup Deployment and the fixed-size
webhook delivery StatefulSet: (dict "ctx" $ "delivery" true|false "v" <values of that workload>).
Only the delivery pods deliver webhooks (FRAUDRADAR_WEBHOOK_DELIVERY); their StatefulSet
ordinal is the delivery index (from the pod name) and its replica count the delivery count.
*/}}
{{- define "fraudradar.apiPodSpec" -}}
{{- $ := .ctx -}}
{{- $api := $.Values.api -}}
serviceAccountName: {{ include "fraudradar.serviceAccountName" $ }}
automountServiceAccountToken: false
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $.Values.podSecurityContext | nindent 2 }}
# SIGTERM: stop materialising, save webhook cursors, flush audit records (uvicorn waits up to 20 s).
terminationGracePeriodSeconds: 30
containers:
  - name: api
    image: {{ include "fraudradar.image" $ }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    args: ["api"]
    env:
      {{- include "fraudradar.commonEnv" $ | trim | nindent 6 }}
      {{- include "fraudradar.keysEnv" (dict "pseudonym" true "disclosure" true) | trim | nindent 6 }}
      - name: FRAUDRADAR_API_PORT
        value: {{ $api.port | quote }}
      - name: FRAUDRADAR_HTTP_PORT
        value: {{ $api.opsPort | quote }}
      - name: FRAUDRADAR_PARTNERS_FILE
        value: /etc/fraudradar/partners/partners.yaml
      - name: FRAUDRADAR_SIGNING_KEY_FILE
        value: /etc/fraudradar/signing/signing-key.pem
      {{- if include "fraudradar.protectedNumbersConfigMap" $ }}
      {{- include "fraudradar.protectedNumbersEnv" $ | trim | nindent 6 }}
      {{- end }}
      {{- with $api.publicUrl }}
      - name: FRAUDRADAR_PUBLIC_URL
        value: {{ . | quote }}
      {{- end }}
      - name: FRAUDRADAR_LIMITS_DIVISOR
        value: {{ $api.limitsDivisor | quote }}
      - name: FRAUDRADAR_WEBHOOK_DELIVERY
        value: {{ .delivery | quote }}
      {{- if .delivery }}
      - name: FRAUDRADAR_REPLICA_COUNT
        value: {{ $api.webhookDelivery.replicas | quote }}
      - name: FRAUDRADAR_POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      {{- end }}
      {{- with $api.env }}
      {{- include "fraudradar.extraEnv" . | trim | nindent 6 }}
      {{- end }}
    # "partner": the partner API; "http": /metrics, /healthz, /readyz (probes, Prometheus)
    ports:
      - name: partner
        containerPort: {{ $api.port }}
        protocol: TCP
      - name: http
        containerPort: {{ $api.opsPort }}
        protocol: TCP
    {{- include "fraudradar.probes" $ | trim | nindent 4 }}
    resources:
      {{- toYaml .v.resources | nindent 6 }}
    securityContext:
      {{- toYaml $.Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: keys
        mountPath: /etc/fraudradar/keys
        readOnly: true
      - name: partners
        mountPath: /etc/fraudradar/partners
        readOnly: true
      - name: signing
        mountPath: /etc/fraudradar/signing
        readOnly: true
      {{- if include "fraudradar.protectedNumbersConfigMap" $ }}
      {{- include "fraudradar.protectedNumbersVolumeMount" $ | trim | nindent 6 }}
      {{- end }}
      {{- include "fraudradar.kafkaVolumeMounts" $ | trim | nindent 6 }}
volumes:
  {{- include "fraudradar.keysVolume" (dict "ctx" $ "pseudonym" true "disclosure" true) | trim | nindent 2 }}
  - name: partners
    configMap:
      name: {{ include "fraudradar.fullname" $ }}-partners
  - name: signing
    secret:
      secretName: {{ required "api.signingKeySecret.name is required: a Secret with the token signing key" $api.signingKeySecret.name }}
      defaultMode: 0400
      items:
        - key: {{ $api.signingKeySecret.key }}
          path: signing-key.pem
  {{- if include "fraudradar.protectedNumbersConfigMap" $ }}
  {{- include "fraudradar.protectedNumbersVolume" $ | trim | nindent 2 }}
  {{- end }}
  {{- include "fraudradar.kafkaVolumes" $ | trim | nindent 2 }}
{{- include "fraudradar.podScheduling" .v }}
{{- end -}}
