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
    double cropScaleMin = 0.08, ImageSettings? image = null)
{
    public int BatchSize => batchSize;
    public Device Device => device;

    /// <summary>Training-time pipeline when <paramref name="augment"/>, evaluation pipeline otherwise.</summary>
    public DataLoader Loader(IImageDataset dataset, bool augment, bool shuffle, int? batchSizeOverride = null)
    {
        var pipeline = augment
            ? ImagePipeline.ForTraining(imageSize, augment: true, mean, std, cropScaleMin, image)
            : ImagePipeline.ForEvaluation(imageSize, mean, std, image);
        return new DataLoader(dataset, pipeline, batchSizeOverride ?? batchSize, shuffle, seed,
            workers ?? 0, device);
    }
}
