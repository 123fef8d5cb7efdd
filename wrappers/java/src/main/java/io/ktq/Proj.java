package io.ktq;

/** One of the three matrices of a routed expert (the C API's ktq_expert_proj). */
public enum Proj {
    /** gate_proj (w1): [moe_intermediate, hidden]. */
    GATE,
    /** up_proj (w3): [moe_intermediate, hidden]. */
    UP,
    /** down_proj (w2): [hidden, moe_intermediate]. */
    DOWN;

    int code() {
        return ordinal();
    }

    static Proj of(long code) {
        if (code < 0 || code >= values().length) throw new IllegalStateException("unknown expert projection " + code);
        return values()[(int) code];
    }
}
