using ContinualMoE.Methods;
using ContinualMoE.Tests.Baselines;
using ContinualMoE.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Training;

public class ScalarSafeOptimizerTests
{
    /// <summary>Runs eight steps of a quadratic loss on two parameter groups at different rates with the given optimiser
    /// and returns the final parameters.</summary>
    private static Tensor[] Train(Func<IReadOnlyList<Parameter>, IReadOnlyList<Parameter>, optim.Optimizer> create)
    {
        torch.random.manual_seed(7);
        var first = new Parameter(randn(5, 3));
        var second = new Parameter(randn(4));
        var target = randn(5, 3);
        using var optimizer = create([first], [second]);
        for (var step = 0; step < 8; step++)
        {
            optimizer.zero_grad();
            using var loss = (first - target).pow(2).sum() + second.pow(3).sum();
            loss.backward();
            optimizer.step();
        }
        return [first.detach().clone(), second.detach().clone()];
    }

    private static OptimizerSettings Settings(OptimizerKind kind, double weightDecay) =>
        new() { Kind = kind, LearningRate = 0.05, WeightDecay = weightDecay, Momentum = 0.9, Betas = (0.8, 0.95) };

    public static TheoryData<OptimizerKind, double> Kinds => new()
    {
        { OptimizerKind.Adam, 0.0 }, { OptimizerKind.Adam, 0.01 },
        { OptimizerKind.AdamW, 0.0 }, { OptimizerKind.AdamW, 0.05 },
        { OptimizerKind.Sgd, 0.0 }, { OptimizerKind.Sgd, 0.01 },
    };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void StepsAreBitIdenticalToTorchSharps(OptimizerKind kind, double weightDecay)
    {
        var settings = Settings(kind, weightDecay);
        var ours = Train((a, b) =>
        {
            var optimizer = Optimizers.Create([new ParameterGroup("a", a), new ParameterGroup("b", b, 0.5)], settings);
            Assert.StartsWith("ScalarSafe", optimizer.GetType().Name);
            return optimizer;
        });
        // TorchSharp's own step() passes temporary Scalars to libtorch (docs/known-issues.md): a collection during the
        // reference run can finalize one mid-call ("tensor does not have a device"). No collection may run while it steps.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        var noCollections = GC.TryStartNoGCRegion(64L << 20);
        var reference = Train((a, b) => kind switch
        {
            OptimizerKind.Adam => optim.Adam([new Adam.ParamGroup(a, new Adam.Options { LearningRate = 0.05 }),
                new Adam.ParamGroup(b, new Adam.Options { LearningRate = 0.025 })], 0.05, 0.8, 0.95, weight_decay: weightDecay),
            OptimizerKind.AdamW => optim.AdamW([new AdamW.ParamGroup(a, new AdamW.Options { LearningRate = 0.05 }),
                new AdamW.ParamGroup(b, new AdamW.Options { LearningRate = 0.025 })], 0.05, 0.8, 0.95, weight_decay: weightDecay),
            _ => optim.SGD([new SGD.ParamGroup(a, new SGD.Options { LearningRate = 0.05, momentum = 0.9 }),
                new SGD.ParamGroup(b, new SGD.Options { LearningRate = 0.025, momentum = 0.9 })], 0.05, 0.9, weight_decay: weightDecay),
        });
        if (noCollections && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        for (var i = 0; i < ours.Length; i++)
        {
            Assert.True(ours[i].equal(reference[i]).all().item<bool>(), $"parameter {i} differs from TorchSharp's {kind} step");
        }
        // The parameters moved: the comparison above is not between two untouched copies.
        torch.random.manual_seed(7);
        Assert.False(ours[0].equal(randn(5, 3)).all().item<bool>());
    }
}
