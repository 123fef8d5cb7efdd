package io.ktq;

/** Receives progress; returning false cancels the conversion. */
@FunctionalInterface
public interface ProgressListener {
    boolean onProgress(Progress progress);
}
