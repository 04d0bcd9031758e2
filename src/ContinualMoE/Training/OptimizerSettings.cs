using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

public enum OptimizerKind { Adam, AdamW, Sgd }

public enum ScheduleKind { Constant, Step, Cosine }

/// <summary>How one training phase optimises: optimiser, base learning rate, schedule, clipping.
/// Per-group rates are multipliers on <see cref="LearningRate"/> (see <see cref="ParameterGroup"/>).</summary>
public sealed record OptimizerSettings
{
    public OptimizerKind Kind { get; init; } = OptimizerKind.Adam;
    public double LearningRate { get; init; } = 1e-3;
    public double WeightDecay { get; init; }
    public double Momentum { get; init; } = 0.9;
    public (double Beta1, double Beta2) Betas { get; init; } = (0.9, 0.999);
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Constant;
    /// <summary>Step schedule: epochs at which the rate is multiplied by <see cref="StepGamma"/>.</summary>
    public IReadOnlyList<int> StepMilestones { get; init; } = [];
    public double StepGamma { get; init; } = 0.1;
    /// <summary>Clip the global gradient norm to this value; null for no clipping.</summary>
    public double? ClipGradNorm { get; init; }
}

/// <summary>Parameters trained together at <c>LearningRate * RateMultiplier</c>.</summary>
public sealed record ParameterGroup(string Name, IReadOnlyList<Parameter> Parameters, double RateMultiplier = 1.0);

/// <summary>Creates optimisers and per-epoch learning rates; the one place that knows TorchSharp's optimiser API.</summary>
public static class Optimizers
{
    public static optim.Optimizer Create(IReadOnlyList<ParameterGroup> groups, OptimizerSettings settings)
    {
        var trainable = groups.Where(g => g.Parameters.Count > 0).ToList();
        if (trainable.Count == 0) throw new ContinualMoEException("a training phase has no trainable parameters");
        switch (settings.Kind)
        {
            // The project's own steps: TorchSharp's create temporary scalars libtorch may read after they are freed.
            case OptimizerKind.Adam:
                return new ScalarSafeAdam(trainable.Select(g => new Adam.ParamGroup(g.Parameters,
                    new Adam.Options { LearningRate = settings.LearningRate * g.RateMultiplier })),
                    settings.LearningRate, settings.Betas.Beta1, settings.Betas.Beta2, settings.WeightDecay);
            case OptimizerKind.AdamW:
                return new ScalarSafeAdamW(trainable.Select(g => new AdamW.ParamGroup(g.Parameters,
                    new AdamW.Options { LearningRate = settings.LearningRate * g.RateMultiplier })),
                    settings.LearningRate, settings.Betas.Beta1, settings.Betas.Beta2, settings.WeightDecay);
            case OptimizerKind.Sgd:
                return new ScalarSafeSgd(trainable.Select(g => new SGD.ParamGroup(g.Parameters,
                    new SGD.Options { LearningRate = settings.LearningRate * g.RateMultiplier, momentum = settings.Momentum })),
                    settings.LearningRate, settings.Momentum, settings.WeightDecay);
            default: throw new ArgumentOutOfRangeException(nameof(settings));
        }
    }

    /// <summary>The multiplier on every group's base rate for <paramref name="epoch"/> (0-based) of <paramref name="epochs"/>.
    /// Cosine follows PyTorch's CosineAnnealingLR with eta_min 0, stepped once per epoch.</summary>
    public static double ScheduleFactor(OptimizerSettings settings, int epoch, int epochs) => settings.Schedule switch
    {
        ScheduleKind.Constant => 1.0,
        ScheduleKind.Step => Math.Pow(settings.StepGamma, settings.StepMilestones.Count(m => epoch >= m)),
        ScheduleKind.Cosine => 0.5 * (1 + Math.Cos(Math.PI * epoch / Math.Max(1, epochs))),
        _ => 1.0,
    };

    /// <summary>Sets each group's rate to its base rate times <paramref name="factor"/>.</summary>
    public static void ApplyFactor(optim.Optimizer optimizer, IReadOnlyList<ParameterGroup> groups, OptimizerSettings settings, double factor)
    {
        var trainable = groups.Where(g => g.Parameters.Count > 0).ToList();
        var index = 0;
        foreach (var group in optimizer.ParamGroups)
        {
            group.LearningRate = settings.LearningRate * trainable[index].RateMultiplier * factor;
            index++;
        }
    }
}
