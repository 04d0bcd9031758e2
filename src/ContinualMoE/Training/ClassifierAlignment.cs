using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>Settings of a classifier alignment on Gaussian pseudo-features: each epoch draws
/// <see cref="SamplesPerClass"/> features of every seen class, shuffles them and trains on consecutive batches of
/// <see cref="BatchSize"/>, with <see cref="Optimizer"/> (its schedule may be per epoch or per iteration).</summary>
public sealed record AlignmentSettings(int Epochs, int SamplesPerClass, int BatchSize, OptimizerSettings Optimizer)
{
    /// <summary>Optimiser steps per epoch; null runs every batch of the epoch's samples once. The official SMoPE code
    /// (trainer.py, train_task_adaptive_prediction) and HiDe-Prompt's run as many steps as there are classes in the
    /// earlier tasks, so most of each epoch's samples are never used. Capped at the number of batches drawn.</summary>
    public int? IterationsPerEpoch { get; init; }

    /// <summary>Run a small head's loop (<see cref="ClassifierAlignment.OneThreadLimit"/>) on one thread, where its tiny
    /// ops are faster. Opt-in per method, where bit-identity with the process's threads was checked: SMoPE's embedded
    /// default (checkpoint identical). SETA's tiny test run changed in the last bits on one thread, so it is not general.</summary>
    public bool OneThreadWhenSmall { get; init; }
}

/// <summary>
/// Retrains a classifier on features sampled from stored per-class Gaussians of every seen class, with logits masked
/// to the seen classes: SMoPE's classifier alignment, HiDe-Prompt's task-adaptive prediction (TAP) and the re-alignment
/// of its task-identity head all do this. Only the given parameters change.
/// </summary>
public static class ClassifierAlignment
{
    /// <summary>The alignment optimiser of the official SMoPE and HiDe-Prompt code (trainer.py and the TAP / TII engines'
    /// train_task_adaptive_prediction): SGD with momentum 0.9 and PyTorch's CosineAnnealingLR(T_max = epochs), stepped
    /// after each epoch, i.e. epoch e at rate x (1 + cos(pi e / epochs)) / 2. SMoPE's project recipe, HiDe-Prompt's
    /// alignments, SAMoE and SETA all use it.</summary>
    public static OptimizerSettings SgdCosine(double learningRate, double weightDecay = 0) => new()
    {
        Kind = OptimizerKind.Sgd, LearningRate = learningRate, Momentum = 0.9, WeightDecay = weightDecay, Schedule = ScheduleKind.Cosine,
    };

    public static void Run(Func<Tensor, Tensor> classifier, IReadOnlyList<ParameterGroup> parameters,
        GaussianClassStatistics statistics, IReadOnlyList<int> classes, bool[] logitMask, AlignmentSettings settings, int seed)
    {
        var generator = new Generator((ulong)seed, statistics.Means.device);
        Run(classifier, parameters, logitMask, settings, _ => statistics.SampleClasses(classes, settings.SamplesPerClass, generator));
    }

    /// <summary>The alignment loop on the features and labels <paramref name="drawEpoch"/> returns for each epoch (already
    /// shuffled); the parity tests feed it the official code's draws.</summary>
    public static void Run(Func<Tensor, Tensor> classifier, IReadOnlyList<ParameterGroup> parameters, bool[] logitMask,
        AlignmentSettings settings, Func<int, (Tensor Features, Tensor Labels)> drawEpoch)
    {
        var multiplyAdds = settings.BatchSize * parameters.Sum(g => g.Parameters.Sum(p => p.numel()));
        Run(classifier, parameters, logitMask, settings, drawEpoch, oneThread: settings.OneThreadWhenSmall && multiplyAdds <= OneThreadLimit);
    }

    /// <summary>The loop on one thread or on the process's threads (tests compare the two).</summary>
    internal static void Run(Func<Tensor, Tensor> classifier, IReadOnlyList<ParameterGroup> parameters, bool[] logitMask,
        AlignmentSettings settings, Func<int, (Tensor Features, Tensor Labels)> drawEpoch, bool oneThread)
    {
        if (settings.BatchSize < 1) throw new ContinualMoEException($"classifier alignment batch size must be positive, got {settings.BatchSize}");
        if (oneThread) ComputeDevice.OnOneThread(() => Train(classifier, parameters, logitMask, settings, drawEpoch));
        else Train(classifier, parameters, logitMask, settings, drawEpoch);
    }

    /// <summary>Alignments whose batch costs at most this many multiply-adds (batch x trained parameters; the embedded
    /// default's linear head: 64 x 2,580) run on one thread, where their tiny ops are faster
    /// (<see cref="ComputeDevice.OnOneThread"/>); a ViT-B head over 100 classes (64 x 76,900) keeps every thread.</summary>
    internal const long OneThreadLimit = 1L << 20;

    private static void Train(Func<Tensor, Tensor> classifier, IReadOnlyList<ParameterGroup> parameters, bool[] logitMask,
        AlignmentSettings settings, Func<int, (Tensor Features, Tensor Labels)> drawEpoch)
    {
        using var optimizer = Optimizers.Create(parameters, settings.Optimizer);
        using var excluded = Losses.ExcludedClasses(logitMask);   // made once, not per step
        long iteration = 0;
        for (var epoch = 0; epoch < settings.Epochs; epoch++)
        {
            using var epochScope = NewDisposeScope();
            var (features, labels) = drawEpoch(epoch);
            var count = labels.shape[0];
            var batches = (int)((count + settings.BatchSize - 1) / settings.BatchSize);
            var steps = Math.Min(batches, settings.IterationsPerEpoch ?? batches);
            for (var step = 0; step < steps; step++)
            {
                using var scope = NewDisposeScope();
                Optimizers.ApplySchedule(optimizer, parameters, settings.Optimizer, epoch, settings.Epochs, iteration++, steps);
                long start = (long)step * settings.BatchSize;
                var length = Math.Min(settings.BatchSize, count - start);
                optimizer.zero_grad();
                var loss = Losses.MaskedCrossEntropy(classifier(features.narrow(0, start, length)), labels.narrow(0, start, length), excluded);
                if (!float.IsFinite(loss.item<float>()))
                    throw new ContinualMoEException($"classifier alignment loss is not finite at epoch {epoch + 1}: lower the alignment learning rate");
                loss.backward();
                optimizer.step();
            }
        }
    }
}
