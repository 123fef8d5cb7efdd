package io.ktq;

/** What a checkpoint is. */
public record ModelInfo(String architecture, String modelType, String family, String sourceDtype, String notice,
                        int numLayers, int hiddenSize, int numExperts, int expertsPerToken, int moeIntermediateSize,
                        int firstDenseLayers, int numMoeLayers, int numSharedExperts, long numTensors,
                        long totalBytes) {}
