package io.ktq;

/**
 * Loads the JNI glue library once: from the path in the system property
 * {@code ktq.jni.library} if set, else {@code libktq_jni.so} from
 * {@code java.library.path}. The glue links the installed libktq.
 */
final class NativeLibrary {
    private static boolean loaded;

    private NativeLibrary() {}

    static synchronized void load() {
        if (loaded) return;
        String path = System.getProperty("ktq.jni.library");
        if (path != null && !path.isEmpty()) {
            System.load(path);
        } else {
            System.loadLibrary("ktq_jni");
        }
        loaded = true;
    }
}
