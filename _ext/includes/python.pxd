# The CPython calls the record ring needs to let go of the GIL on its rare waiting path.
from cpython.pystate cimport PyThreadState

cdef extern from "Python.h":
    int PyGILState_Check() nogil
    PyThreadState *PyEval_SaveThread() nogil
    void PyEval_RestoreThread(PyThreadState *) nogil
