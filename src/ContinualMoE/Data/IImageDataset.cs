namespace ContinualMoE.Data;

/// <summary>
/// A labelled image dataset with random access. Labels are dense class ids 0..ClassCount-1 that index <see cref="ClassNames"/>.
/// Implementations must allow <see cref="GetImage"/> to be called from several threads at once (the data loader does).
/// </summary>
public interface IImageDataset
{
    string Name { get; }
    int Count { get; }

    /// <summary>Names of all classes; ClassCount = ClassNames.Count.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>The label of sample <paramref name="index"/>; cheap, never decodes an image.</summary>
    int GetLabel(int index);

    /// <summary>The image of sample <paramref name="index"/>; may decode lazily; thread-safe.</summary>
    RawImage GetImage(int index);
}

/// <summary>A dataset's official (or documented, seeded) train/test split.</summary>
public sealed record DatasetSplits(IImageDataset Train, IImageDataset Test);

public static class ImageDatasetExtensions
{
    public static int ClassCount(this IImageDataset dataset) => dataset.ClassNames.Count;

    /// <summary>All labels in index order (cheap: no decoding).</summary>
    public static int[] Labels(this IImageDataset dataset)
    {
        var labels = new int[dataset.Count];
        for (var i = 0; i < labels.Length; i++) labels[i] = dataset.GetLabel(i);
        return labels;
    }

    internal static void CheckIndex(this IImageDataset dataset, int index)
    {
        if ((uint)index >= (uint)dataset.Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"dataset '{dataset.Name}' has {dataset.Count} samples");
    }
}
