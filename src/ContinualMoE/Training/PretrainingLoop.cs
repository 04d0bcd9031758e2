using System.Diagnostics;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>What one pretraining batch gives the loop: the mean loss to minimise, how many items (images, tokens) it
/// averaged over, and how many of them the model got right.</summary>
public readonly record struct PretrainingBatchResult(Tensor Loss, long Items, long Correct);

/// <summary>Running totals of the current epoch, reported after every batch.</summary>
public readonly record struct PretrainingLoopProgress(int Epoch, int Epochs, int Batch, int Batches, long Iteration, double Loss,
    double Accuracy, double ItemsPerSecond);

/// <summary>
/// The one supervised pretraining loop (the default ViT, the default language model): the project's scalar-safe
/// optimiser from <see cref="Optimizers.Create"/>, its schedule set before every step, gradient clipping, a finite-loss
/// check and a dispose scope per batch. The caller supplies the batches and the loss.
/// </summary>
public static class PretrainingLoop
{
    public static void Run<TBatch>(IReadOnlyList<Parameter> parameters, OptimizerSettings settings, int epochs, int batchesPerEpoch,
        Func<int, IEnumerable<TBatch>> epochBatches, Func<TBatch, PretrainingBatchResult> lossOf,
        Action<PretrainingLoopProgress>? progress = null, CancellationToken cancellation = default) where TBatch : IDisposable
    {
        var groups = new[] { new ParameterGroup("pretraining", parameters) };
        using var optimizer = Optimizers.Create(groups, settings);
        long iteration = 0;
        for (var epoch = 0; epoch < epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            double lossSum = 0; long seen = 0, correct = 0; var batchIndex = 0;
            foreach (var batch in epochBatches(epoch))
            {
                cancellation.ThrowIfCancellationRequested();
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    Optimizers.ApplySchedule(optimizer, groups, settings, epoch, epochs, iteration, batchesPerEpoch);
                    optimizer.zero_grad();
                    var result = lossOf(batch);
                    var value = result.Loss.item<float>();
                    if (!float.IsFinite(value))
                        throw new ContinualMoEException($"pretraining loss is {value} at epoch {epoch + 1}, batch {batchIndex + 1}: lower the learning rate");
                    result.Loss.backward();
                    Optimizers.ClipAndStep(optimizer, parameters, settings);
                    lossSum += value * result.Items;
                    seen += result.Items;
                    correct += result.Correct;
                }
                batchIndex++;
                iteration++;
                progress?.Invoke(new PretrainingLoopProgress(epoch, epochs, batchIndex, batchesPerEpoch, iteration, lossSum / seen,
                    100.0 * correct / seen, seen / clock.Elapsed.TotalSeconds));
            }
        }
    }
}
