package io.ktq;

import io.ktq.internal.SWIGTYPE_p_ktq_kt_output;
import io.ktq.internal.ktqs_result;
import io.ktq.internal.ktqswig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * A kt-kernel AMX expert output read back: a folder that ktq ({@link ConvertOptions.Format#KT_INT4} /
 * {@link ConvertOptions.Format#KT_INT8}) or kt-kernel's own converter wrote, as merged safetensors or as loose
 * .kt files. Thread-safe: any number of threads may read one output; close() waits for calls in flight, and a
 * call after close() throws IllegalStateException.
 */
public final class KtOutput implements AutoCloseable {
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private SWIGTYPE_p_ktq_kt_output raw;
    private final Path path;

    private KtOutput(SWIGTYPE_p_ktq_kt_output raw, Path path) {
        this.raw = raw;
        this.path = path;
    }

    /**
     * Opens {@code dir}: merged when it holds *.safetensors, else loose. A KtqException naming the folder
     * (NOT_FOUND when it holds no kt expert weights, FORMAT when they are inconsistent) otherwise.
     */
    public static KtOutput open(Path dir) throws KtqException {
        Objects.requireNonNull(dir, "dir");
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_kt_output o = ktqswig.ktqs_kt_open(dir.toString(), res);
            Ktq.check(res);
            return new KtOutput(o, dir);
        } finally {
            res.delete();
        }
    }

    /** The folder this output was opened from. */
    public Path path() {
        return path;
    }

    private SWIGTYPE_p_ktq_kt_output handle() {
        if (raw == null) throw new IllegalStateException("this ktq KtOutput is closed");
        return raw;
    }

    /** True for the merged safetensors layout, false for loose .kt files. */
    public boolean isMerged() {
        lock.readLock().lock();
        try {
            return ktqswig.ktqs_kt_is_merged(handle()) != 0;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** The number of expert parts (layers x experts x 3 projections x NUMA parts). */
    public int partCount() {
        lock.readLock().lock();
        try {
            return (int) ktqswig.ktqs_kt_part_count(handle());
        } finally {
            lock.readLock().unlock();
        }
    }

    /** Every expert part, ordered by layer, projection, expert and NUMA part. */
    public List<KtPart> parts() throws KtqException {
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_kt_output o = handle();
            int n = (int) ktqswig.ktqs_kt_part_count(o);
            List<KtPart> out = new ArrayList<>(n);
            for (int i = 0; i < n; i++) out.add(partAt(o, i, res));
            return Collections.unmodifiableList(out);
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /** Part {@code index} (0 .. partCount() - 1; a KtqException otherwise). */
    public KtPart part(int index) throws KtqException {
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            return partAt(handle(), index, res);
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    private static KtPart partAt(SWIGTYPE_p_ktq_kt_output o, int index, ktqs_result res) throws KtqException {
        String name = ktqswig.ktqs_kt_part_name(o, index, res);
        Ktq.check(res);
        long[] v = new long[8];
        String[] fields = {"layer", "expert", "proj", "part", "bits", "rows", "cols", "packed_bytes"};
        for (int k = 0; k < fields.length; k++) {
            v[k] = ktqswig.ktqs_kt_part_num(o, index, fields[k], res);
            Ktq.check(res);
        }
        return new KtPart(index, name, (int) v[0], (int) v[1], Proj.of(v[2]), (int) v[3], (int) v[4], v[5], v[6],
                v[7]);
    }

    /** The packed weight bytes and the float32 scales (one per row) of part {@code index}, as stored. */
    public KtPartData read(int index) throws KtqException {
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_kt_output o = handle();
            KtPart p = partAt(o, index, res);
            byte[] packed = new byte[Model.arrayLength(p.packedBytes(), p.name())];
            float[] scales = new float[Model.arrayLength(p.rows(), p.name())];
            ktqswig.ktqs_kt_read(o, index, packed, scales, res);
            Ktq.check(res);
            return new KtPartData(packed, scales);
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /** The rows x cols weights part {@code index} stands for (code x its row's scale), row-major. */
    public float[] dequantize(int index) throws KtqException {
        lock.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            SWIGTYPE_p_ktq_kt_output o = handle();
            KtPart p = partAt(o, index, res);
            float[] out = new float[Model.arrayLength(p.rows() * p.cols(), p.name())];
            ktqswig.ktqs_kt_dequantize(o, index, out, res);
            Ktq.check(res);
            return out;
        } finally {
            res.delete();
            lock.readLock().unlock();
        }
    }

    /** Releases the output; closing twice is harmless. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (raw != null) {
                ktqswig.ktqs_kt_free(raw);
                raw = null;
            }
        } finally {
            lock.writeLock().unlock();
        }
    }
}
