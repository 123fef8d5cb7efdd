package io.ktq;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

class SystemInfoTest {
    @Test
    void describesThisMachine() throws Exception {
        SystemInfo s = Ktq.systemInfo();
        assertTrue(s.cores() >= 1, s.toString());
        assertTrue(s.numaNodes() >= 1, s.toString());
        assertTrue(s.pus() >= s.cores(), s.toString());
        assertFalse(s.cpuModel().isBlank(), s.toString());
        assertTrue(s.cudaDevices() >= 0, s.toString());
        if (!s.cudaBuilt()) assertEquals(0, s.cudaDevices(), s.toString());
        if (s.cudaDevices() == 0) assertEquals("", s.cudaDevice0(), s.toString());
        Path cpuinfo = Path.of("/proc/cpuinfo");
        if (Files.isReadable(cpuinfo)) {  // the kernel's view of the CPU's flags
            List<String> flags = Files.readAllLines(cpuinfo).stream().filter(l -> l.startsWith("flags"))
                    .findFirst().map(l -> Arrays.asList(l.substring(l.indexOf(':') + 1).trim().split("\\s+")))
                    .orElse(null);
            if (flags != null) {
                assertEquals(flags.contains("avx2"), s.avx2(), s.toString());
                assertEquals(flags.contains("avx512f"), s.avx512f(), s.toString());
            }
        }
    }
}
