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
    double LabelSmoothing = 0.1, int Seed = 0, double CropScaleMin = 0.08, VitInitialisation Initialisation = VitInitialisation.Timm);

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
        DefaultBackbone.KeepMklsOwnKernelsIfNeeded(settings);
        torch.random.manual_seed(settings.Seed);
        var model = new VisionTransformer(config with { ClassCount = data.Train.ClassNames.Count }, settings.Seed, settings.Initialisation);
        model.to(device);
        model.SetFrozen(false);
        model.train();
        var parameters = model.parameters().ToList();
        var optimizerSettings = new OptimizerSettings
        {
            Kind = OptimizerKind.AdamW, LearningRate = settings.LearningRate, WeightDecay = settings.WeightDecay,
            Schedule = ScheduleKind.Cosine, ClipGradNorm = 1.0,
        };
        var loader = new DataLoader(data.Train, ImagePipeline.ForTraining(config.ImageSize, augment: true, ImagePipeline.VitMean, ImagePipeline.VitStd, settings.CropScaleMin),
            settings.BatchSize, shuffle: true, settings.Seed, device: device);
        PretrainingLoop.Run(parameters, optimizerSettings, settings.Epochs, loader.BatchesPerEpoch, loader.Epoch,
            batch =>
            {
                var logits = model.forward(batch.Images);
                var loss = nn.functional.cross_entropy(logits, batch.Labels, label_smoothing: settings.LabelSmoothing);
                return new PretrainingBatchResult(loss, batch.Labels.shape[0], logits.argmax(-1).eq(batch.Labels).sum().item<long>());
            },
            p => progress?.Report(new PretrainProgress(p.Epoch, p.Epochs, p.Batch, p.Batches, p.Loss, p.Accuracy, p.ItemsPerSecond)),
            cancellation);
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
