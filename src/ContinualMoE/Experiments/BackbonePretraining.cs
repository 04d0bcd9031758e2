using TorchSharp;
using ContinualMoE.Data.Transforms;
using System.Diagnostics;
using ContinualMoE.Backbones;
using ContinualMoE.Data;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Experiments;

/// <summary>Settings of supervised pretraining from scratch.</summary>
public sealed record PretrainSettings(int Epochs = 12, int BatchSize = 128, double LearningRate = 1e-3, double WeightDecay = 0.05,
    double LabelSmoothing = 0.1, int Seed = 0, double CropScaleMin = 0.08);

/// <summary>Progress of pretraining, one report per batch.</summary>
public sealed record PretrainProgress(int Epoch, int Epochs, int Batch, int Batches, double Loss, double Accuracy, double ImagesPerSecond);

/// <summary>
/// Trains a ViT from scratch with AdamW, cosine schedule and label smoothing on a labelled dataset: by default the
/// generated benchmark's upstream classes, which are disjoint from its continual classes, so the embedded default run
/// continues from a backbone that has never seen its classes (like an ImageNet-pretrained ViT on CIFAR).
/// </summary>
public static class BackbonePretraining
{
    public static VisionTransformer Train(VitConfig config, DatasetSplits data, PretrainSettings settings, Device device,
        IProgress<PretrainProgress>? progress = null, CancellationToken cancellation = default)
    {
        torch.random.manual_seed(settings.Seed);
        var model = new VisionTransformer(config with { ClassCount = data.Train.ClassNames.Count }, settings.Seed);
        model.to(device);
        model.SetFrozen(false);
        model.train();
        var parameters = model.parameters().ToList();
        var optimizerSettings = new OptimizerSettings
        {
            Kind = OptimizerKind.AdamW, LearningRate = settings.LearningRate, WeightDecay = settings.WeightDecay,
            Schedule = ScheduleKind.Cosine, ClipGradNorm = 1.0,
        };
        var groups = new[] { new ParameterGroup("backbone", parameters) };
        using var optimizer = Optimizers.Create(groups, optimizerSettings);
        var loader = new DataLoader(data.Train, ImagePipeline.ForTraining(config.ImageSize, augment: true, ImagePipeline.VitMean, ImagePipeline.VitStd, settings.CropScaleMin),
            settings.BatchSize, shuffle: true, settings.Seed, device: device);
        var allClasses = Enumerable.Repeat(true, data.Train.ClassNames.Count).ToArray();
        for (var epoch = 0; epoch < settings.Epochs; epoch++)
        {
            Optimizers.ApplyFactor(optimizer, groups, optimizerSettings, Optimizers.ScheduleFactor(optimizerSettings, epoch, settings.Epochs));
            var clock = Stopwatch.StartNew();
            double lossSum = 0; long seen = 0, correct = 0; var batchIndex = 0;
            foreach (var batch in loader.Epoch(epoch))
            {
                cancellation.ThrowIfCancellationRequested();
                using (batch)
                using (var scope = NewDisposeScope())
                {
                    optimizer.zero_grad();
                    var logits = model.forward(batch.Images);
                    var loss = nn.functional.cross_entropy(logits, batch.Labels, label_smoothing: settings.LabelSmoothing);
                    var value = loss.item<float>();
                    if (!float.IsFinite(value))
                        throw new ContinualMoEException($"pretraining loss is {value} at epoch {epoch + 1}, batch {batchIndex + 1}: lower the learning rate");
                    loss.backward();
                    Optimizers.ClipAndStep(optimizer, parameters, optimizerSettings);
                    lossSum += value * batch.Labels.shape[0];
                    seen += batch.Labels.shape[0];
                    correct += logits.argmax(-1).eq(batch.Labels).sum().item<long>();
                }
                batchIndex++;
                progress?.Report(new PretrainProgress(epoch, settings.Epochs, batchIndex, loader.BatchesPerEpoch, lossSum / seen,
                    100.0 * correct / seen, seen / clock.Elapsed.TotalSeconds));
            }
        }
        model.eval();
        model.SetFrozen(true);
        return model;
    }

    /// <summary>Top-1 accuracy (percent) of the model's own head on a dataset.</summary>
    public static double Evaluate(VisionTransformer model, IImageDataset data, int batchSize, Device device)
    {
        using var noGrad = no_grad();
        var loader = new DataLoader(data, ImagePipeline.ForEvaluation(model.Config.ImageSize, ImagePipeline.VitMean, ImagePipeline.VitStd),
            batchSize, shuffle: false, seed: 0, device: device);
        long correct = 0, total = 0;
        foreach (var batch in loader.Epoch(0))
        {
            using (batch)
            using (var scope = NewDisposeScope())
            {
                correct += model.forward(batch.Images).argmax(-1).eq(batch.Labels).sum().item<long>();
                total += batch.Labels.shape[0];
            }
        }
        return total == 0 ? 0 : 100.0 * correct / total;
    }
}
