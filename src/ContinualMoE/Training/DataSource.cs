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
    private bool text;

    /// <summary>Loaders of text datasets (<see cref="Data.Text.ITextDataset"/>): tokenised examples, right-padded, in
    /// batches of <paramref name="batchSize"/>; the order is seeded as for images and there is no augmentation.</summary>
    public static DataSource ForText(int batchSize, int seed, Device device) =>
        new(0, [], [], batchSize, seed, device) { text = true };

    public int BatchSize => batchSize;
    public Device Device => device;
    public Data.InputModality Modality => text ? Data.InputModality.Text : Data.InputModality.Image;
    /// <summary>What throughput figures count: "img" or "tok".</summary>
    public string ThroughputUnit => text ? "tok" : "img";

    /// <summary>The run's <c>drop_last</c>: training phases skip the last, incomplete batch of every epoch, as torch's
    /// <c>DataLoader(drop_last=True)</c> does after shuffling (the official SMoPE training loader,
    /// dataloaders/dataloader.py and trainer.py).</summary>
    public bool DropLastInTraining => dropLastInTraining;

    /// <summary>The image transforms of <see cref="Loader"/>: the training pipeline when <paramref name="augment"/>,
    /// the evaluation pipeline otherwise (callers that batch images themselves, as the model service, prepare them with it).</summary>
    public ImagePipeline Pipeline(bool augment)
    {
        if (text) throw new ContinualMoEException("a text model has no image pipeline; images need a vision backbone");
        return augment
            ? ImagePipeline.ForTraining(imageSize, augment: true, mean, std, cropScaleMin, image)
            : ImagePipeline.ForEvaluation(imageSize, mean, std, image);
    }

    /// <summary>Training-time pipeline when <paramref name="augment"/>, evaluation pipeline otherwise (images; text batches are never augmented).
    /// <paramref name="dropLast"/> drops the epoch's last incomplete batch (the order is shuffled first).</summary>
    public IBatchLoader Loader(ILabelledDataset dataset, bool augment, bool shuffle, int? batchSizeOverride = null, bool dropLast = false)
    {
        if (text)
            return new Data.Text.TextDataLoader(dataset as Data.Text.ITextDataset
                    ?? throw new ContinualMoEException($"dataset '{dataset.Name}' has no text; a text run needs text tasks"),
                batchSizeOverride ?? batchSize, shuffle, seed, device);
        if (dataset is not IImageDataset images)
            throw new ContinualMoEException($"dataset '{dataset.Name}' has no images; text tasks need a language-model backbone");
        return new DataLoader(images, Pipeline(augment), batchSizeOverride ?? batchSize, shuffle, seed,
            workers ?? 0, device) { DropLast = dropLast, TorchWorkers = image is { TorchRng: true } ? image.TorchWorkers : null };
    }
}
