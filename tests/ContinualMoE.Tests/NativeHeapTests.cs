using ContinualMoE.Tests.Sweeps;

namespace ContinualMoE.Tests;

public class NativeHeapTests
{
    /// <summary>glibc refuses an out-of-range value (an mmap threshold above 32 MB, for one) by returning 0 from mallopt.</summary>
    [Fact]
    public void GlibcTakesBothThresholdsOnLinux()
    {
        if (!OperatingSystem.IsLinux()) return;
        Assert.True(NativeHeap.KeepFreedMemory());
        Assert.True(NativeHeap.KeepFreedMemory());   // once per process, same answer
    }

    /// <summary>glibc ignores a misspelt tunable without a word, so a child process built with g++ (which the TorchSharp
    /// fix installs) shows that the variable takes: a freed 4 MB block is mapped on its own by default and comes from the
    /// heap (and stays there) with <see cref="NativeHeap.GlibcTunables"/>.</summary>
    [Fact]
    public void AChildProcessGetsTheSameHeapSettingsFromTheVariable()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var temp = new Checkpoints.TempDirectory();
        var source = temp.File("probe.cpp");
        File.WriteAllText(source, """
            #include <malloc.h>
            #include <stdio.h>
            #include <stdlib.h>
            int main() {
                void* block = malloc(4 << 20);
                struct mallinfo2 info = mallinfo2();
                printf("%zu %zu\n", info.hblks, info.hblkhd);
                free(block);
                return 0;
            }
            """);
        var probe = temp.File("probe");
        Assert.Equal((0, ""), SweepTestFiles.Run("g++", ["-O0", "-o", probe, source]));
        Assert.StartsWith("1 ", Probe(""));                                       // glibc's default: mapped on its own
        Assert.Equal("0 0", Probe(NativeHeap.GlibcTunables()));                   // under 32 MB: from the heap
        Assert.Equal("0 0", Probe(NativeHeap.GlibcTunables("glibc.malloc.check=0")));   // an existing value is kept
        Assert.StartsWith("glibc.malloc.check=0:", NativeHeap.GlibcTunables("glibc.malloc.check=0"));

        // An empty GLIBC_TUNABLES is glibc's default, whatever the test runner was started with.
        string Probe(string tunables)
        {
            var (code, output) = SweepTestFiles.Run(probe, [], new Dictionary<string, string> { ["GLIBC_TUNABLES"] = tunables });
            Assert.True(code == 0, $"{probe}: {output}");
            return output.Trim();
        }
    }
}
