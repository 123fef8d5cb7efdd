package io.ktq;

/** Progress of a running conversion; layer is -1 for the non-layer tensors. */
public record Progress(int layer, long bytesDone, long bytesTotal) {}
