package io.ktq;

/** A failed libktq call: its status code and message (naming file and tensor). */
public final class KtqException extends Exception {
    public static final int INVALID_ARGUMENT = -1, IO = -2, FORMAT = -3, UNSUPPORTED = -4, NOT_FOUND = -5,
            NO_MEMORY = -6, CANCELLED = -7, BUFFER_TOO_SMALL = -8, VERSION = -9, NO_SPACE = -10, STATE = -11,
            INTERNAL = -12;

    private final int status;

    public KtqException(int status, String message) {
        super(message);
        this.status = status;
    }

    /** The libktq status code (one of the constants of this class). */
    public int status() {
        return status;
    }
}
