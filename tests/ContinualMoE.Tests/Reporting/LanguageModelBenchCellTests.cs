using ContinualMoE.Cli.Commands;
using ContinualMoE.Cli.Reporting;

namespace ContinualMoE.Tests.Reporting;

/// <summary><c>bench lm</c>'s rounds (each round's ratio pairs the two sides measured back to back) and the PyTorch side's
/// environment.</summary>
public class LanguageModelBenchCellTests
{
    [Fact]
    public void TheRatioIsTheMedianOfEachRoundsOwnRatioNotTheRatioOfMedians()
    {
        // The machine slows in round 2: both sides drop, and its ratio stays with the others.
        var cell = new LanguageModelBenchCell("bf16", "full", OursTrain: [24_000, 12_000, 22_000], OursGenerate: [5_000, 4_000, 6_000],
            TheirsTrain: [20_000, 11_000, 21_000], TheirsGenerate: [4_000, 5_000, 4_000]);
        Assert.Equal(new Spread(22_000, 12_000, 24_000, 3), cell.OursTrainSpread);
        Assert.Equal(new Spread(20_000, 11_000, 21_000, 3), cell.TheirsTrainSpread);
        Assert.Equal(new Spread(12_000 / 11_000.0, 22_000 / 21_000.0, 24_000 / 20_000.0, 3), cell.TrainRatio);
        Assert.Equal(new Spread(1.25, 0.8, 1.5, 3), cell.GenerateRatio);
    }

    [Fact]
    public void WithoutPyTorchThereIsNoRatioAndUnpairedRoundsAreRefused()
    {
        var alone = new LanguageModelBenchCell("fp32", "lora q,v r8", [10_000], [3_000], [], []);
        Assert.Null(alone.TrainRatio);
        Assert.Null(alone.TheirsGenerateSpread);
        Assert.Equal(10_000, alone.OursTrainSpread.Median);
        var unpaired = new LanguageModelBenchCell("fp32", "full", [10_000, 11_000], [3_000, 3_100], [9_000], [2_000]);
        Assert.Throws<ArgumentException>(() => unpaired.TrainRatio);
    }

    [Fact]
    public void PyTorchGetsOurHeapSettingsAndOneOpenBlasThreadUnlessTheUserSaidOtherwise()
    {
        var plain = new Dictionary<string, string?>();
        LanguageModelBenchCommand.ConfigurePyTorch(plain);
        Assert.Equal(NativeHeap.GlibcTunables(), plain["GLIBC_TUNABLES"]);
        Assert.Equal("1", plain["OPENBLAS_NUM_THREADS"]);

        var users = new Dictionary<string, string?> { ["OPENBLAS_NUM_THREADS"] = "2", ["GLIBC_TUNABLES"] = "glibc.malloc.check=0" };
        LanguageModelBenchCommand.ConfigurePyTorch(users);
        Assert.Equal("2", users["OPENBLAS_NUM_THREADS"]);
        Assert.Equal(NativeHeap.GlibcTunables("glibc.malloc.check=0"), users["GLIBC_TUNABLES"]);
    }
}
