// SPDX-License-Identifier: MIT OR Apache-2.0

// The seed's experiment on the JVM (issue 20): a slab of SPIKE of LIMIT bytes, written, dropped,
// then the rest of LIMIT, written. Run it as memspike does:
//
//     javac -d build reference/java/Spike.java
//     memspike exec --limit 128MiB -- java -Xmx512m -cp build Spike 134217728 0.9
//
// With a heap maximum above the group's limit the kernel kills the JVM; with one below what the
// slab needs the JVM throws java.lang.OutOfMemoryError itself (exit status 1). A third argument
// waits that many milliseconds before the spike, as a service runs a while before its burst.
public class Spike {
    public static void main(String[] args) {
        long limit = args.length > 0 ? Long.parseLong(args[0]) : 32L << 20;
        double spike = args.length > 1 ? Double.parseDouble(args[1]) : 0.9;
        if (args.length > 2) {
            try {
                Thread.sleep(Long.parseLong(args[2]));
            } catch (InterruptedException e) {
                return;
            }
        }
        byte[] slab = fill((int) (limit * spike));
        System.out.println("phase=spike bytes=" + slab.length);
        slab = null;
        System.out.println("phase=release");
        byte[] rest = fill((int) (limit * (1 - spike)));
        System.out.println("phase=remainder bytes=" + rest.length);
        System.out.println("phase=done");
    }

    /** An array of n bytes, every page of it written. */
    static byte[] fill(int n) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i += 4096) {
            b[i] = 1;
        }
        return b;
    }
}
