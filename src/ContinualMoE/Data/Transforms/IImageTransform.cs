namespace ContinualMoE.Data.Transforms;

/// <summary>
/// One step of an <see cref="ImagePipeline"/>. Random steps draw only from <paramref name="random"/>, which the pipeline
/// seeds per (epoch seed, sample index); that is what makes augmentation reproducible however threads are scheduled.
/// </summary>
public interface IImageTransform
{
    ImageBuffer Apply(ImageBuffer image, Random random);

    /// <summary>The output shape for an input shape, or null if it depends on the input (for describing the pipeline).</summary>
    (int Height, int Width)? OutputSize => null;
}
