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
