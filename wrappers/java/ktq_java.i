/* Java binding: SWIG generates io.ktq.internal from the shared interface. */
%module ktqswig

/* The call layer's array parameters (see ktq.i) as Java arrays. *_IN arrays
 * are not copied back; *_OUT arrays are. A null array counts as empty. */
%define KTQS_JAVA_ARRAY(CTYPE, JTYPE, JARRAY, JNAME, PTR, LEN, RELEASE_MODE)
%typemap(jni) (CTYPE *PTR, size_t LEN) "JARRAY"
%typemap(jtype) (CTYPE *PTR, size_t LEN) "JTYPE[]"
%typemap(jstype) (CTYPE *PTR, size_t LEN) "JTYPE[]"
%typemap(javain) (CTYPE *PTR, size_t LEN) "$javainput"
%typemap(in) (CTYPE *PTR, size_t LEN) {
  $1 = NULL;
  $2 = 0;
  if ($input) {
    $2 = (size_t)JCALL1(GetArrayLength, jenv, $input);
    $1 = (CTYPE *)JCALL2(Get##JNAME##ArrayElements, jenv, $input, 0);
    if (!$1) return $null; /* OutOfMemoryError pending */
  }
}
%typemap(argout) (CTYPE *PTR, size_t LEN) {
  if ($input) JCALL3(Release##JNAME##ArrayElements, jenv, $input, (j##JTYPE *)$1, RELEASE_MODE);
}
%enddef

KTQS_JAVA_ARRAY(float, float, jfloatArray, Float, F32_IN, F32_IN_N, JNI_ABORT)
KTQS_JAVA_ARRAY(float, float, jfloatArray, Float, F32_IN2, F32_IN2_N, JNI_ABORT)
KTQS_JAVA_ARRAY(float, float, jfloatArray, Float, F32_OUT, F32_OUT_N, 0)
KTQS_JAVA_ARRAY(float, float, jfloatArray, Float, F32_OUT2, F32_OUT2_N, 0)
KTQS_JAVA_ARRAY(int32_t, int, jintArray, Int, I32_OUT, I32_OUT_N, 0)
KTQS_JAVA_ARRAY(int32_t, int, jintArray, Int, I32_OUT2, I32_OUT2_N, 0)
KTQS_JAVA_ARRAY(int32_t, int, jintArray, Int, I32_OUT3, I32_OUT3_N, 0)
KTQS_JAVA_ARRAY(void, byte, jbyteArray, Byte, BYTES_IN, BYTES_IN_N, JNI_ABORT)
KTQS_JAVA_ARRAY(void, byte, jbyteArray, Byte, BYTES_OUT, BYTES_OUT_N, 0)

%include "../swig/ktq.i"
