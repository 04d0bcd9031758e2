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
}
