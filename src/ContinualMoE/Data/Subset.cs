namespace ContinualMoE.Data;

/// <summary>
/// A view on some samples of another dataset, in the given order. Labels and class names are those of the inner
/// dataset (the label space is not shrunk), so a subset's labels stay comparable with the full dataset's.
/// </summary>
public sealed class Subset : IImageDataset
{
    private readonly IImageDataset _inner;
    private readonly int[] _indices;

    public Subset(IImageDataset inner, int[] indices, string? name = null)
    {
        _inner = inner;
        foreach (var index in indices)
            if ((uint)index >= (uint)inner.Count)
                throw new ArgumentOutOfRangeException(nameof(indices), index, $"index outside dataset '{inner.Name}' of {inner.Count} samples");
        _indices = (int[])indices.Clone();
        Name = name ?? inner.Name;
    }

    /// <summary>The samples of <paramref name="inner"/> whose label satisfies <paramref name="keep"/>, in index order.</summary>
    public static Subset WhereLabel(IImageDataset inner, Func<int, bool> keep, string? name = null)
    {
        var indices = new List<int>();
        for (var i = 0; i < inner.Count; i++)
            if (keep(inner.GetLabel(i))) indices.Add(i);
        return new Subset(inner, indices.ToArray(), name);
    }

    public string Name { get; }
    public int Count => _indices.Length;
    public IReadOnlyList<string> ClassNames => _inner.ClassNames;
    public IImageDataset Inner => _inner;

    /// <summary>Index in the inner dataset of this subset's sample <paramref name="index"/>.</summary>
    public int InnerIndex(int index) => _indices[index];

    public int GetLabel(int index) => _inner.GetLabel(_indices[index]);
    public RawImage GetImage(int index) => _inner.GetImage(_indices[index]);
}
