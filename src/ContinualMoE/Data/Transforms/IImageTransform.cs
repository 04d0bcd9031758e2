namespace ContinualMoE.Data.Transforms;

/// <summary>
/// One step of an <see cref="ImagePipeline"/>. Random steps draw only from <paramref name="random"/>: the project's
/// source is seeded per (epoch seed, sample index), which makes augmentation reproducible however threads are scheduled;
/// torch's follows a torch DataLoader's per-worker streams (<see cref="AugmentationRandom"/>).
/// </summary>
public interface IImageTransform
{
    ImageBuffer Apply(ImageBuffer image, AugmentationRandom random);

    /// <summary>The output shape for an input shape, or null if it depends on the input (for describing the pipeline).</summary>
    (int Height, int Width)? OutputSize => null;
}
