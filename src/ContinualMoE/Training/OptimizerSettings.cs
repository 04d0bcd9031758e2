using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

public enum OptimizerKind { Adam, AdamW, Sgd }

public enum ScheduleKind
{
    Constant,
    Step,
    /// <summary>PyTorch's CosineAnnealingLR to 0, stepped once per epoch.</summary>
    Cosine,
    /// <summary>Per epoch: rate x cos(99 pi max(0, e - 1) / (200 (E - 1))) for epoch e of E (CODA-Prompt's CosineSchedule,
    /// which SMoPE's CUB-200 config uses: utils/schedulers.py, CosineSchedule). Its constructor leaves the epoch counter
    /// at -1 and the first epoch is not stepped, so the first two epochs both run at the full rate.</summary>
    CodaCosine,
    /// <summary>Per iteration (SMoPE's `coswm`, utils/schedulers.py, CosineSchedulerIter, stepped after every optimiser
    /// step): iteration 0 runs at the group's rate; then <see cref="OptimizerSettings.FreezeIterations"/> iterations at
    /// <see cref="OptimizerSettings.FinalRate"/>; then a cosine from the group's rate x
    /// <see cref="OptimizerSettings.CosineStartFactor"/> down towards <see cref="OptimizerSettings.FinalRate"/> over the
    /// rest of epochs x iterations per epoch; past that, <see cref="OptimizerSettings.FinalRate"/>.</summary>
    IterationCosine,
}

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
    /// <summary>IterationCosine: iterations after the first that run at <see cref="FinalRate"/> before the cosine starts
    /// (the official `schedule[0]`).</summary>
    public int FreezeIterations { get; init; }
    /// <summary>IterationCosine: the length of an epoch in iterations the schedule is laid out for (the official config's
    /// `iter_step`, fixed per dataset and not the loader's real length); null uses the real length.</summary>
    public int? ScheduleIterationsPerEpoch { get; init; }
    /// <summary>IterationCosine: where the cosine starts, as a multiple of each group's rate (1; the official classifier
    /// alignment starts at a tenth of the rate its first iteration ran at).</summary>
    public double CosineStartFactor { get; init; } = 1.0;
    /// <summary>IterationCosine: the absolute rate the cosine ends at, also the rate of frozen iterations (official 1e-6).</summary>
    public double FinalRate { get; init; } = 1e-6;
    /// <summary>Per-epoch schedules: epochs the schedule runs behind. 1 is timm's per-epoch schedulers as the official
    /// HiDe-Prompt / NoRGa engines step them (<c>lr_scheduler.step(epoch)</c> after epoch <c>epoch</c>, so epoch e trains at
    /// the schedule's value for e - 1 and the first two epochs at the full rate); 0 is PyTorch's schedulers stepped
    /// before each epoch's training.</summary>
    public int EpochLag { get; init; }
    /// <summary>Cosine: the absolute rate the cosine decays to (timm's <c>lr_min</c>, the official HiDe-Prompt configs'
    /// <c>--min-lr</c> 1e-5): rate = min + (group rate - min) x (1 + cos) / 2. 0 is PyTorch's CosineAnnealingLR.</summary>
    public double MinRate { get; init; }
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

    /// <summary>The multiplier on every group's base rate for <paramref name="epoch"/> (0-based) of <paramref name="epochs"/>,
    /// for the per-epoch schedules. Cosine follows PyTorch's CosineAnnealingLR with eta_min 0, stepped once per epoch;
    /// <see cref="OptimizerSettings.EpochLag"/> delays the schedule by whole epochs.</summary>
    public static double ScheduleFactor(OptimizerSettings settings, int epoch, int epochs) =>
        UnlaggedFactor(settings, Math.Max(0, epoch - settings.EpochLag), epochs);

    private static double UnlaggedFactor(OptimizerSettings settings, int epoch, int epochs) => settings.Schedule switch
    {
        ScheduleKind.Constant => 1.0,
        ScheduleKind.Step => Math.Pow(settings.StepGamma, settings.StepMilestones.Count(m => epoch >= m)),
        ScheduleKind.Cosine => 0.5 * (1 + Math.Cos(Math.PI * epoch / Math.Max(1, epochs))),
        ScheduleKind.CodaCosine => Math.Cos(99 * Math.PI * Math.Max(0, epoch - 1) / (200.0 * Math.Max(1, epochs - 1))),
        ScheduleKind.IterationCosine => throw new InvalidOperationException("the per-iteration schedule has no per-epoch factor; use Rate"),
        _ => 1.0,
    };

    /// <summary>The rate of a group whose unscheduled rate is <paramref name="groupRate"/> at optimiser step
    /// <paramref name="iteration"/> (0-based, counted over the whole phase) in <paramref name="epoch"/> of
    /// <paramref name="epochs"/>, with <paramref name="iterationsPerEpoch"/> steps in a real epoch. A pure function of
    /// its arguments, so a resumed run recomputes exactly the rates of an uninterrupted one.</summary>
    public static double Rate(OptimizerSettings settings, double groupRate, int epoch, int epochs, long iteration, int iterationsPerEpoch)
    {
        if (settings.Schedule == ScheduleKind.Cosine && settings.MinRate > 0)
            return settings.MinRate + (groupRate - settings.MinRate) * ScheduleFactor(settings, epoch, epochs);
        if (settings.Schedule != ScheduleKind.IterationCosine) return groupRate * ScheduleFactor(settings, epoch, epochs);
        if (iteration == 0) return groupRate;            // the scheduler is first stepped after the first optimiser step
        var step = iteration - 1;
        var total = (long)(settings.ScheduleIterationsPerEpoch ?? iterationsPerEpoch) * epochs;
        if (step >= total || step < settings.FreezeIterations) return settings.FinalRate;
        var cosineLength = total - settings.FreezeIterations;
        var position = step - settings.FreezeIterations;
        var start = groupRate * settings.CosineStartFactor;
        return settings.FinalRate + 0.5 * (start - settings.FinalRate) * (1 + Math.Cos(Math.PI * position / cosineLength));
    }

    /// <summary>Sets each group's rate to <see cref="Rate"/> at this step.</summary>
    /// <summary>One update after <c>backward()</c>: clips the gradients of <paramref name="parameters"/> to the
    /// settings' <see cref="OptimizerSettings.ClipGradNorm"/> (when set), then steps. Every training loop updates
    /// through this, so a clipping setting is honoured everywhere.</summary>
    public static void ClipAndStep(optim.Optimizer optimizer, IEnumerable<Parameter> parameters, OptimizerSettings settings)
    {
        if (settings.ClipGradNorm is double clip) nn.utils.clip_grad_norm_(parameters, clip);
        optimizer.step();
    }

    public static void ApplySchedule(optim.Optimizer optimizer, IReadOnlyList<ParameterGroup> groups, OptimizerSettings settings,
        int epoch, int epochs, long iteration, int iterationsPerEpoch)
    {
        var trainable = groups.Where(g => g.Parameters.Count > 0).ToList();
        var index = 0;
        foreach (var group in optimizer.ParamGroups)
            group.LearningRate = Rate(settings, settings.LearningRate * trainable[index++].RateMultiplier, epoch, epochs, iteration, iterationsPerEpoch);
    }

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
