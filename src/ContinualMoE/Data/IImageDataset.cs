namespace ContinualMoE.Data;

/// <summary>
/// A labelled dataset with random access, whatever its inputs are (images: <see cref="IImageDataset"/>; text:
/// <see cref="Text.ITextDataset"/>). Labels are dense class ids 0..ClassCount-1 that index <see cref="ClassNames"/>.
/// Scenarios, the trainer and the methods handle datasets through this interface; only a loader reads the inputs.
/// </summary>
public interface ILabelledDataset
{
    string Name { get; }
    int Count { get; }

    /// <summary>Names of all classes; ClassCount = ClassNames.Count.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>The label of sample <paramref name="index"/>; cheap, never decodes an input.</summary>
    int GetLabel(int index);
}

/// <summary>
/// A labelled image dataset with random access.
/// Implementations must allow <see cref="GetImage"/> to be called from several threads at once (the data loader does).
/// </summary>
public interface IImageDataset : ILabelledDataset
{
    /// <summary>The image of sample <paramref name="index"/>; may decode lazily; thread-safe.</summary>
    RawImage GetImage(int index);
}

/// <summary>A dataset's official (or documented, seeded) train/test split.</summary>
public sealed record DatasetSplits(IImageDataset Train, IImageDataset Test);

public static class ImageDatasetExtensions
{
    public static int ClassCount(this ILabelledDataset dataset) => dataset.ClassNames.Count;

    /// <summary>All labels in index order (cheap: no decoding).</summary>
    public static int[] Labels(this ILabelledDataset dataset)
    {
        var labels = new int[dataset.Count];
        for (var i = 0; i < labels.Length; i++) labels[i] = dataset.GetLabel(i);
        return labels;
    }

    internal static void CheckIndex(this ILabelledDataset dataset, int index)
    {
        if ((uint)index >= (uint)dataset.Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"dataset '{dataset.Name}' has {dataset.Count} samples");
    }
}
