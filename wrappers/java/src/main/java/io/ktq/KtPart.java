package io.ktq;

/**
 * One NUMA part of one routed expert matrix in a {@link KtOutput}: its position {@code index} in
 * {@link KtOutput#parts()} (the argument of {@link KtOutput#read} and {@link KtOutput#dequantize}), its name
 * ("blk.L.ffn_gate_exps.E.numa.P"), layer, expert, projection, NUMA part, bits per weight (4 or 8), the packed
 * matrix's shape [rows, cols] (rows = output features) and its packed weight bytes.
 */
public record KtPart(int index, String name, int layer, int expert, Proj proj, int part, int bits, long rows,
                     long cols, long packedBytes) {}
