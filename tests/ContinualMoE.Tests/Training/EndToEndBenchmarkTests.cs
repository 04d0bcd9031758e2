using ContinualMoE.Benchmarks;
using ContinualMoE.Tests.Cli;

namespace ContinualMoE.Tests.Training;

/// <summary>Issue 16 §3: the end-to-end benchmark's time split and FLOP count describe the run that was made.</summary>
public class EndToEndBenchmarkTests
{
    [Fact]
    public void TimeSplitAndFlopsAccountForEveryTrainingAndTestImage()
    {
        var config = EveryMethodCheckpointTests.TinyRun("shared-prompt") with { Tasks = 2, Precision = "bf16" };
        var r = EndToEndBenchmark.Run(config, null, matmulGflops: 1.0);
        var t = r.Times;
        // 2 tasks of 3 classes, 6 training and 3 test images per class, 1 epoch; evaluation after task 1 sees 1 task, after 2 both.
        Assert.Equal(2 * 3 * 6, t.TrainImages);
        Assert.Equal(3 * 3 + 2 * 3 * 3, t.TestImages);
        Assert.True(t.Forward > 0 && t.Backward > 0 && t.Optimizer > 0 && t.Evaluation > 0, $"{t.Forward} {t.Backward} {t.Optimizer} {t.Evaluation}");
        Assert.True(t.Total <= r.WallSeconds, $"parts {t.Total} s exceed the wall time {r.WallSeconds} s");
        // One prefix-prompted pass per training image (forward and backward) and one per test image.
        var perImage = ContinualMoE.Backbones.VitRegistry.Get("vit_nano_patch4_32").ForwardFlops() / 1e9;
        Assert.Equal((2.0 * t.TrainImages + t.TestImages) * perImage, r.BackboneGflop, 6);
        Assert.Equal("bf16", r.Precision);
        Assert.InRange(r.FinalAverageAccuracy, 0, 100);
    }
}
