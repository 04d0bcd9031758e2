using TorchSharp;
using ContinualMoE.Data.Transforms;
using ContinualMoE.Data;
using static TorchSharp.torch;

namespace ContinualMoE.Training;

/// <summary>
/// Makes data loaders with the run's image size, normalisation and input settings (<see cref="ImageSettings"/>), batch size and workers, so that methods that need
/// an extra pass over data (statistics, expert frequencies, prototypes) load it exactly as the trainer does.
/// </summary>
public sealed class DataSource(int imageSize, float[] mean, float[] std, int batchSize, int seed, Device device, int? workers = null,
    double cropScaleMin = 0.08, ImageSettings? image = null, bool dropLastInTraining = false)
{
    public int BatchSize => batchSize;
    public Device Device => device;

    /// <summary>The run's <c>drop_last</c>: training phases skip the last, incomplete batch of every epoch, as torch's
    /// <c>DataLoader(drop_last=True)</c> does after shuffling (the official SMoPE training loader,
    /// dataloaders/dataloader.py and trainer.py).</summary>
    public bool DropLastInTraining => dropLastInTraining;

    /// <summary>Training-time pipeline when <paramref name="augment"/>, evaluation pipeline otherwise.
    /// <paramref name="dropLast"/> drops the epoch's last incomplete batch (the order is shuffled first).</summary>
    public DataLoader Loader(IImageDataset dataset, bool augment, bool shuffle, int? batchSizeOverride = null, bool dropLast = false)
    {
        var pipeline = augment
            ? ImagePipeline.ForTraining(imageSize, augment: true, mean, std, cropScaleMin, image)
            : ImagePipeline.ForEvaluation(imageSize, mean, std, image);
        return new DataLoader(dataset, pipeline, batchSizeOverride ?? batchSize, shuffle, seed,
            workers ?? 0, device) { DropLast = dropLast };
    }
}
