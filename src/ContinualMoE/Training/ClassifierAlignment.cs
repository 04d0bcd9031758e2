using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>Settings of a classifier alignment on Gaussian pseudo-features.</summary>
public sealed record AlignmentSettings(int Epochs, int SamplesPerClass, int BatchSize, OptimizerSettings Optimizer);

/// <summary>
/// Retrains a classifier on features sampled from stored per-class Gaussians of every seen class, with logits masked
/// to the seen classes: SMoPE's classifier alignment, HiDe-Prompt's task-adaptive prediction (TAP) and the re-alignment
/// of its task-identity head all do this. Only the given parameters change.
/// </summary>
public static class ClassifierAlignment
{
    public static void Run(Func<Tensor, Tensor> classifier, IReadOnlyList<ParameterGroup> parameters,
        GaussianClassStatistics statistics, IReadOnlyList<int> classes, bool[] logitMask, AlignmentSettings settings, int seed)
    {
        var generator = new Generator((ulong)seed, statistics.Means.device);
        using var optimizer = Optimizers.Create(parameters, settings.Optimizer);
        for (var epoch = 0; epoch < settings.Epochs; epoch++)
        {
            Optimizers.ApplyFactor(optimizer, parameters, settings.Optimizer, Optimizers.ScheduleFactor(settings.Optimizer, epoch, settings.Epochs));
            using var epochScope = NewDisposeScope();
            var (features, labels) = statistics.SampleClasses(classes, settings.SamplesPerClass, generator);
            for (long start = 0; start < labels.shape[0]; start += settings.BatchSize)
            {
                using var scope = NewDisposeScope();
                var length = Math.Min(settings.BatchSize, labels.shape[0] - start);
                optimizer.zero_grad();
                var loss = Losses.MaskedCrossEntropy(classifier(features.narrow(0, start, length)), labels.narrow(0, start, length), logitMask);
                if (!float.IsFinite(loss.item<float>()))
                    throw new ContinualMoEException($"classifier alignment loss is not finite at epoch {epoch + 1}: lower the alignment learning rate");
                loss.backward();
                optimizer.step();
            }
        }
    }
}
