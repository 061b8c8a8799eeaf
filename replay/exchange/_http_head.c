/* The simulator's HTTP request head parser in C: http11.parse_head_py, for the heads it is sure
   about (ASCII, a well-formed request line and headers whose names are tokens, no control
   character in a header line, no header twice, no percent-encoded path). It answers
   None for anything else, and the Python definition decides: refusals keep their exact
   messages, and one definition stays the reference (a property test holds this one to it).

   Why: the head is parsed on every request the venue serves, ping and orders alike, and the
   Python version was the largest single cost of a request after the event loop's own. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

/* What the definition strips around a header value: space and horizontal tab */
static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar: what a header name is made of */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* a control character other than HTAB (a bare CR or LF among them) */
static int
is_field_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static int
is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char
lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* the first "\r\n" in [p, end), or end */
static const char *
line_end(const char *p, const char *end)
{
    for (const char *q = p; q + 1 < end; q++) {
        q = memchr(q, '\r', end - q - 1);
        if (q == NULL)
            return end;
        if (q[1] == '\n')
            return q;
    }
    return end;
}

static int
contains(const char *text, Py_ssize_t n, const char *word)
{
    Py_ssize_t w = (Py_ssize_t)strlen(word);
    for (Py_ssize_t i = 0; i + w <= n; i++)
        if (memcmp(text + i, word, w) == 0)
            return 1;
    return 0;
}

/* Header name and value into `headers` (name lower-cased, value stripped); 0 when the line is
   one the Python definition refuses or the header was seen before (the definition refuses some
   repeated headers), -1 on a Python error, 1 when added. */
static int
add_header(PyObject *headers, const char *p, const char *end, char *scratch,
           const char **connection, Py_ssize_t *connection_n)
{
    const char *colon = memchr(p, ':', end - p);
    if (colon == NULL || colon == p)
        return 0;
    Py_ssize_t name_n = colon - p;
    for (const char *c = p; c < colon; c++)
        if (!is_tchar((unsigned char)*c))
            return 0;
    for (const char *c = colon + 1; c < end; c++)
        if (is_field_ctl((unsigned char)*c))
            return 0;
    const char *value = colon + 1, *value_end = end;
    while (value < value_end && is_space((unsigned char)*value))
        value++;
    while (value_end > value && is_space((unsigned char)value_end[-1]))
        value_end--;
    for (Py_ssize_t i = 0; i < name_n; i++)
        scratch[i] = lower(p[i]);
    if (name_n == 10 && memcmp(scratch, "connection", 10) == 0) {
        *connection = value;
        *connection_n = value_end - value;
    }
    PyObject *name_obj = PyUnicode_DecodeASCII(scratch, name_n, NULL);
    PyObject *value_obj = name_obj ? PyUnicode_DecodeASCII(value, value_end - value, NULL) : NULL;
    Py_ssize_t before = PyDict_GET_SIZE(headers);
    int rc = (name_obj && value_obj) ? PyDict_SetItem(headers, name_obj, value_obj) : -1;
    Py_XDECREF(name_obj);
    Py_XDECREF(value_obj);
    if (rc < 0)
        return -1;
    return PyDict_GET_SIZE(headers) > before; /* not grown: a header seen before */
}

static PyObject *
parse(PyObject *module, PyObject *arg)
{
    char *head;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(arg, &head, &n) < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)head[i] >= 0x80)
            Py_RETURN_NONE;
    const char *end = head + n;
    const char *request_end = line_end(head, end);
    /* the request line: exactly three parts split on single spaces */
    const char *sp1 = memchr(head, ' ', request_end - head);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', request_end - sp1 - 1) : NULL;
    if (sp2 == NULL || memchr(sp2 + 1, ' ', request_end - sp2 - 1) != NULL)
        Py_RETURN_NONE;
    if (sp1 == head || sp2 == sp1 + 1)
        Py_RETURN_NONE;
    for (const char *c = head; c < sp1; c++)
        if (!is_alpha((unsigned char)*c))
            Py_RETURN_NONE;
    const char *version = sp2 + 1;
    Py_ssize_t version_n = request_end - version;
    if (version_n != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
        (version[7] != '1' && version[7] != '0'))
        Py_RETURN_NONE;
    int http11 = version[7] == '1';
    const char *target = sp1 + 1, *target_end = sp2;
    const char *question = memchr(target, '?', target_end - target);
    const char *path_end = question ? question : target_end;
    if (memchr(target, '%', path_end - target) != NULL)
        Py_RETURN_NONE; /* percent-decoding the path: the Python path */

    char small[256];
    char *scratch = n <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc(n);
    if (scratch == NULL)
        return PyErr_NoMemory();
    PyObject *headers = PyDict_New(), *result = NULL;
    const char *connection = "";
    Py_ssize_t connection_n = 0;
    if (headers == NULL)
        goto done;
    for (const char *p = request_end; p < end;) {
        p += 2; /* past the "\r\n" that ended the line before */
        const char *e = line_end(p, end);
        int rc = add_header(headers, p, e, scratch, &connection, &connection_n);
        if (rc < 0)
            goto done;
        if (rc == 0) {
            result = Py_None;
            Py_INCREF(result);
            goto done;
        }
        p = e;
    }
    for (Py_ssize_t i = 0; i < connection_n; i++)
        scratch[i] = lower(connection[i]);
    int keep_alive = http11 ? !contains(scratch, connection_n, "close")
                            : contains(scratch, connection_n, "keep-alive");
    for (Py_ssize_t i = 0; i < sp1 - head; i++)
        scratch[i] = (head[i] >= 'a' && head[i] <= 'z') ? (char)(head[i] - 32) : head[i];
    PyObject *method = PyUnicode_DecodeASCII(scratch, sp1 - head, NULL);
    PyObject *path = PyUnicode_DecodeASCII(target, path_end - target, NULL);
    PyObject *query = question ? PyUnicode_DecodeASCII(question + 1, target_end - question - 1, NULL)
                               : PyUnicode_FromStringAndSize(NULL, 0);
    if (method && path && query)
        result = Py_BuildValue("(OOOOO)", method, path, query, headers,
                               keep_alive ? Py_True : Py_False);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(query);
done:
    if (scratch != small)
        PyMem_Free(scratch);
    Py_XDECREF(headers);
    return result;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_O,
     "parse(head) -> (method, path, query_string, headers, keep_alive) | None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "replay.exchange._http_head",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__http_head(void)
{
    return PyModule_Create(&module_def);
}
