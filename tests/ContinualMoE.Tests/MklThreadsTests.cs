using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests;

public class MklThreadsTests
{
    [Fact]
    public void OnCallingThreadUsesOneThreadThenRestoresAndLeavesProductsUnchanged()
    {
        Assert.True(MklThreads.Available, "this libtorch (linux-x64) should export MKL's thread-local setting");
        var threads = torch.get_num_threads();
        torch.set_num_threads(2);
        try
        {
            var before = MklThreads.MaxThreads();
            Assert.Equal(2, before);
            var generator = new Generator(4);
            // The low-rank products of a generation step (rank 8 and 24, 8 and 128 rows) and a square one.
            foreach (var (rows, inner, columns) in new[] { (8L, 768L, 8L), (8L, 8L, 768L), (128L, 768L, 24L), (128L, 24L, 768L), (64L, 256L, 256L) })
            {
                var a = randn([rows, inner], generator: generator);
                var b = randn([columns, inner], generator: generator).t();
                var shared = a.matmul(b);
                Tensor alone;
                using (MklThreads.OnCallingThread())
                {
                    Assert.Equal(1, MklThreads.MaxThreads());
                    alone = a.matmul(b);
                }
                Assert.Equal(before, MklThreads.MaxThreads());
                Assert.Equal(0f, (alone - shared).abs().max().item<float>());
            }
        }
        finally { torch.set_num_threads(threads); }
    }
}
