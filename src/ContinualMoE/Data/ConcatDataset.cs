namespace ContinualMoE.Data;

/// <summary>Several datasets with the same classes seen as one (e.g. the training sets of all tasks so far), of images
/// or of text (the parts' own modality; reading an input the parts do not have is an error).</summary>
public sealed class ConcatDataset : IImageDataset, Text.ITextDataset
{
    private readonly ILabelledDataset[] parts;
    private readonly int[] starts;

    public ConcatDataset(IReadOnlyList<ILabelledDataset> datasets)
    {
        if (datasets.Count == 0) throw new ArgumentException("at least one dataset is needed", nameof(datasets));
        parts = [.. datasets];
        starts = new int[parts.Length];
        for (var i = 1; i < parts.Length; i++) starts[i] = starts[i - 1] + parts[i - 1].Count;
        Count = starts[^1] + parts[^1].Count;
    }

    public string Name => string.Join("+", parts.Select(p => p.Name).Distinct());
    public int Count { get; }
    public IReadOnlyList<string> ClassNames => parts[0].ClassNames;
    public int GetLabel(int index) { var (p, i) = Locate(index); return parts[p].GetLabel(i); }
    public RawImage GetImage(int index) { var (p, i) = Locate(index); return Part<IImageDataset>(p).GetImage(i); }
    public Text.TokenizedText GetText(int index) { var (p, i) = Locate(index); return Part<Text.ITextDataset>(p).GetText(i); }

    private T Part<T>(int part) where T : class =>
        parts[part] as T ?? throw new ContinualMoEException($"dataset '{parts[part].Name}' is not a {typeof(T).Name}");

    private (int Part, int Index) Locate(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index));
        var part = Array.BinarySearch(starts, index);
        if (part < 0) part = ~part - 1;
        while (part + 1 < starts.Length && starts[part + 1] == index) part++;  // skip empty parts
        return (part, index - starts[part]);
    }
}
