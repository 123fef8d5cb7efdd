/* Java binding: SWIG generates io.ktq.internal from the shared interface. */
%module ktqswig
%include "../swig/ktq.i"
