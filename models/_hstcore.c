/* Half-Space Trees walks, compiled: models.hst._walk_python in C, with identical results.
 *
 * walk(learn, x, names, lo, hi, split, threshold, l_mass, r_mass, n_trees, height, size_limit)
 *
 *   x          dict of raw feature values (the model's input)
 *   names      tuple of the feature names the trees split on (split[] indexes it)
 *   lo, hi     the running min/max of signed-log1p'd features (ScaledHalfSpaceTrees.lo/.hi;
 *              updated with every non-NaN feature of x first when learning)
 *   split      array('i'): per branch node, the index into names
 *   threshold  array('d'): per branch node, the split point
 *   l_mass     array('q'): per node, the mass of the window being filled (written when learning)
 *   r_mass     array('q'): per node, the mass of the reference window
 *
 * Trees are complete binary trees stored heap-fashion, one after the other: node i's children are
 * 2i+1 and 2i+2; a tree has 2^height - 1 branches and 2^(height+1) - 1 nodes.
 * Each feature is scaled as models.hst._scaled_values does (sign(v) * log1p(|v|), min-max into
 * [0, 1]; a NaN is missing, as an absent key), then learning walks every tree adding 1 to l_mass
 * along the path (River's _walk_learn; a feature missing from x follows the child with more
 * l_mass) and returns 0.0, scoring sums r_mass * 2^depth
 * along the path, stopping below size_limit (River's _walk_score) and returns the sum, tree by tree
 * in the same float order as River. Returns None (the Python then walks) for anything unusual: a
 * value that is not a real number, buffers of the wrong type or size, too many features.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

#define MAX_NAMES 512

static int buffer(PyObject *o, Py_buffer *view, const char *format, Py_ssize_t itemsize, Py_ssize_t n, int writable) {
    if (PyObject_GetBuffer(o, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0) {
        PyErr_Clear();
        return -1;
    }
    if (view->itemsize != itemsize || view->len != n * itemsize || !view->format || strcmp(view->format, format) != 0) {
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* sign(v) * log1p(|v|): the scaler's transform (0 stays 0; the caller has taken NaN out) */
static double signed_log1p(double v) { return v > 0.0 ? log1p(v) : (v < 0.0 ? -log1p(-v) : 0.0); }

/* signed log1p, then min-max into [0, 1]: models.hst._scaled_values for one feature */
static int scaled(PyObject *x, PyObject *name, PyObject *lo, PyObject *hi, double *out, int *present) {
    PyObject *value = PyDict_GetItemWithError(x, name);
    if (!value) {
        if (PyErr_Occurred()) return -1;
        *present = 0;
        return 0;
    }
    if (!PyFloat_Check(value) && !PyLong_Check(value)) return -1;
    double v = PyFloat_AsDouble(value);
    if (v == -1.0 && PyErr_Occurred()) return -1;
    if (isnan(v)) {                                   /* NaN: missing, as an absent key */
        *present = 0;
        return 0;
    }
    *present = 1;
    double z = signed_log1p(v);
    PyObject *low_o = PyDict_GetItemWithError(lo, name);
    if (!low_o) {
        if (PyErr_Occurred()) return -1;
        *out = 0.0;
        return 0;
    }
    PyObject *high_o = PyDict_GetItemWithError(hi, name);
    if (!high_o || !PyFloat_Check(low_o) || !PyFloat_Check(high_o)) return -1;
    double low = PyFloat_AS_DOUBLE(low_o), span = PyFloat_AS_DOUBLE(high_o) - low;
    if (span == 0.0) {
        *out = 0.0;
        return 0;
    }
    z = (z - low) / span;
    *out = z > 1.0 ? 1.0 : (z < 0.0 ? 0.0 : z);
    return 0;
}

/* the scaler's running min/max of signed-log1p'd values, over every non-NaN feature of x (learning
 * only); every value is checked before anything is written, so a value that is not a number
 * changes nothing */
static int update_scaler(PyObject *x, PyObject *lo, PyObject *hi) {
    Py_ssize_t n = PyDict_GET_SIZE(x), pos = 0, k = 0;
    double *zs = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(double));
    if (!zs) return -1;
    PyObject *name, *value;
    while (PyDict_Next(x, &pos, &name, &value)) {
        if (!PyFloat_Check(value) && !PyLong_Check(value)) goto fail;
        double v = PyFloat_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred()) goto fail;
        zs[k++] = isnan(v) ? NAN : signed_log1p(v);
    }
    pos = 0;
    k = 0;
    while (PyDict_Next(x, &pos, &name, &value)) {
        double z = zs[k++];
        if (isnan(z)) continue;                       /* missing: the scaler is left alone */
        PyObject *low = PyDict_GetItemWithError(lo, name);
        PyObject *target = NULL, *target2 = NULL;
        if (!low) {
            if (PyErr_Occurred()) goto fail;
            target = lo;
            target2 = hi;
        } else {
            PyObject *high = PyDict_GetItemWithError(hi, name);
            if (!high || !PyFloat_Check(low) || !PyFloat_Check(high)) goto fail;
            if (z < PyFloat_AS_DOUBLE(low)) target = lo;
            else if (z > PyFloat_AS_DOUBLE(high)) target = hi;
        }
        if (target) {
            PyObject *zo = PyFloat_FromDouble(z);
            if (!zo || PyDict_SetItem(target, name, zo) < 0 || (target2 && PyDict_SetItem(target2, name, zo) < 0)) {
                Py_XDECREF(zo);
                goto fail;
            }
            Py_DECREF(zo);
        }
    }
    PyMem_Free(zs);
    return 0;
fail:
    PyMem_Free(zs);
    return -1;
}

static PyObject *walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "walk() takes 12 arguments");
        return NULL;
    }
    int learn = PyObject_IsTrue(args[0]);
    PyObject *x = args[1], *names = args[2], *lo = args[3], *hi = args[4];
    long n_trees = PyLong_AsLong(args[9]), height = PyLong_AsLong(args[10]);
    double size_limit = PyFloat_AsDouble(args[11]);
    if (learn < 0 || PyErr_Occurred()) return NULL;
    if (!PyDict_Check(x) || !PyTuple_Check(names) || !PyDict_Check(lo) || !PyDict_Check(hi)) Py_RETURN_NONE;
    Py_ssize_t n_names = PyTuple_GET_SIZE(names);
    if (n_names > MAX_NAMES || n_trees < 0 || height < 1 || height > 30) Py_RETURN_NONE;
    /* the scaler first; a min/max update is idempotent, so when anything below declines, the
     * Python's walk updating it again gives the same lo/hi */
    if (learn && update_scaler(x, lo, hi) < 0) {
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_MemoryError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    double values[MAX_NAMES];
    int present[MAX_NAMES];
    for (Py_ssize_t k = 0; k < n_names; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        if (!PyUnicode_CheckExact(name) || scaled(x, name, lo, hi, &values[k], &present[k]) < 0) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
    }
    const Py_ssize_t branches = ((Py_ssize_t)1 << height) - 1, nodes = 2 * branches + 1;
    Py_buffer sb, tb, lb, rb;
    if (buffer(args[5], &sb, "i", sizeof(int), n_trees * branches, 0) < 0) Py_RETURN_NONE;
    if (buffer(args[6], &tb, "d", sizeof(double), n_trees * branches, 0) < 0) {
        PyBuffer_Release(&sb);
        Py_RETURN_NONE;
    }
    if (buffer(args[7], &lb, "q", sizeof(long long), n_trees * nodes, learn) < 0) {
        PyBuffer_Release(&sb);
        PyBuffer_Release(&tb);
        Py_RETURN_NONE;
    }
    if (buffer(args[8], &rb, "q", sizeof(long long), n_trees * nodes, 0) < 0) {
        PyBuffer_Release(&sb);
        PyBuffer_Release(&tb);
        PyBuffer_Release(&lb);
        Py_RETURN_NONE;
    }
    const int *split = sb.buf;
    const double *threshold = tb.buf;
    long long *l_mass = lb.buf;
    const long long *r_mass = rb.buf;
    /* learning writes l_mass as it goes, so every split index is checked before (a decline then
     * leaves the masses as they were); scoring only reads, and checks the ones it meets */
    int bad = 0;
    for (Py_ssize_t b = 0; learn && b < n_trees * branches; b++)
        if (split[b] < 0 || split[b] >= n_names) bad = 1;
    double total = 0.0;
    for (long t = 0; t < n_trees && !bad; t++) {
        const int *sp = split + t * branches;
        const double *th = threshold + t * branches;
        long long *lm = l_mass + t * nodes;
        const long long *rm = r_mass + t * nodes;
        Py_ssize_t node = 0;
        double score = 0.0;
        long long depth_pow = 1;
        long d;
        for (d = 0; d < height; d++) {
            if (learn) {
                lm[node] += 1;                           /* River's _walk_learn */
            } else {
                long long r = rm[node];                  /* River's _walk_score */
                score += (double)(r * depth_pow);
                if ((double)r < size_limit) break;
            }
            int f = sp[node];
            if (f < 0 || f >= n_names) {
                bad = 1;
                break;
            }
            Py_ssize_t left = 2 * node + 1, right = left + 1;
            if (!present[f]) node = lm[left] < lm[right] ? right : left;   /* missing: the busier child */
            else node = values[f] < th[node] ? left : right;
            depth_pow <<= 1;
        }
        if (d == height) {                               /* reached a leaf */
            if (learn) lm[node] += 1;
            else score += (double)(rm[node] * depth_pow);
        }
        total += score;
    }
    PyBuffer_Release(&sb);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&lb);
    PyBuffer_Release(&rb);
    if (bad) Py_RETURN_NONE;
    return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "walk(learn, x, names, lo, hi, split, threshold, l_mass, r_mass, n_trees, height, size_limit): "
     "models.hst._walk_python, compiled"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_hstcore",
                                    "Half-Space Trees walks, compiled (see models.hst._walk_python).",
                                    -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__hstcore(void) { return PyModule_Create(&module); }
