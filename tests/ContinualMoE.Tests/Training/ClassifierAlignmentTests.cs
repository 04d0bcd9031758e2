using ContinualMoE.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

public class ClassifierAlignmentTests
{
    /// <summary>Three classes of 8-dimensional Gaussians and a linear classifier whose calls are counted.</summary>
    private static int StepsRun(int? iterationsPerEpoch, int epochs = 2)
    {
        torch.random.manual_seed(3);
        using var statistics = new GaussianClassStatistics(3, 8, CovarianceKind.Diagonal);
        for (var c = 0; c < 3; c++) statistics.Set(c, randn(20, 8) + c);
        using var head = nn.Linear(8, 3);
        var calls = 0;
        ClassifierAlignment.Run(x => { calls++; return head.forward(x); }, [new ParameterGroup("head", [.. head.parameters()])],
            statistics, [0, 1, 2], [true, true, true],
            new AlignmentSettings(epochs, SamplesPerClass: 8, BatchSize: 4, new OptimizerSettings { Kind = OptimizerKind.Sgd, LearningRate = 0.01 })
            { IterationsPerEpoch = iterationsPerEpoch }, seed: 5);
        return calls;
    }

    [Fact]
    public void AnEpochRunsEveryBatchOrTheCappedNumberOfSteps()
    {
        Assert.Equal(2 * 6, StepsRun(null));      // 3 classes x 8 samples in batches of 4
        Assert.Equal(2 * 2, StepsRun(2));         // the official codes: as many steps as earlier classes
        Assert.Equal(2 * 6, StepsRun(100));       // never more steps than batches drawn
    }
}

/// <summary>Small alignments that opt in (SMoPE) run on one thread for speed (ClassifierAlignment.OneThreadLimit); the head must be
/// bit for bit the head the process's threads train.</summary>
public class ClassifierAlignmentThreadTests
{
    /// <summary>The embedded default's alignment in small: 128-dimensional features, 20 classes of which 16 are seen, a
    /// linear head, batches of 64, SGD with momentum and the per-epoch cosine; the head's weight and bias afterwards.</summary>
    private static (float[] Weight, float[] Bias) AlignedHead(bool oneThread)
    {
        torch.random.manual_seed(11);
        using var statistics = new GaussianClassStatistics(20, 128, CovarianceKind.Diagonal);
        for (var c = 0; c < 16; c++) statistics.Set(c, randn(30, 128).mul(0.5 + c / 16.0).add(c / 4.0));
        using var head = nn.Linear(128, 20);
        var seen = Enumerable.Range(0, 16).ToList();
        var mask = Enumerable.Range(0, 20).Select(c => c < 16).ToArray();
        var generator = new Generator(7);
        ClassifierAlignment.Run(head.forward, [new ParameterGroup("head", [.. head.parameters()])], mask,
            new AlignmentSettings(3, SamplesPerClass: 32, BatchSize: 64, ClassifierAlignment.SgdCosine(0.01)),
            _ => statistics.SampleClasses(seen, 32, generator), oneThread);
        return (head.weight!.data<float>().ToArray(), head.bias!.data<float>().ToArray());
    }

    [Fact]
    public void OneThreadTrainsTheSameHeadBitForBit()
    {
        var threads = torch.get_num_threads();
        ComputeDevice.ConfigureThreads(2);
        try
        {
            var (weight, bias) = AlignedHead(oneThread: false);
            var (weight1, bias1) = AlignedHead(oneThread: true);
            Assert.Equal(weight, weight1);
            Assert.Equal(bias, bias1);
            Assert.Equal(2, torch.get_num_threads());   // restored after the one-thread loop
            var untrained = nn.Linear(128, 20);
            Assert.NotEqual(untrained.weight!.data<float>().ToArray(), weight);   // the loop did train
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [Fact]
    public void TheEmbeddedDefaultsHeadRunsOnOneThreadAndAViTBHeadDoesNot()
    {
        Assert.True(64L * (128 * 20 + 20) <= ClassifierAlignment.OneThreadLimit);
        Assert.True(64L * (768 * 100 + 100) > ClassifierAlignment.OneThreadLimit);
    }

    [Fact]
    public void OnOneThreadRunsWithOneThreadAndRestoresTheCount()
    {
        var threads = torch.get_num_threads();
        ComputeDevice.ConfigureThreads(2);
        try
        {
            var inside = 0;
            ComputeDevice.OnOneThread(() => inside = torch.get_num_threads());
            Assert.Equal(1, inside);
            Assert.Equal(2, torch.get_num_threads());
            Assert.Throws<InvalidOperationException>(() => ComputeDevice.OnOneThread(() => throw new InvalidOperationException()));
            Assert.Equal(2, torch.get_num_threads());
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }
}
