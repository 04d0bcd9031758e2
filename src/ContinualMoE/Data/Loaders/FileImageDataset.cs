namespace ContinualMoE.Data.Loaders;

/// <summary>
/// Images stored as files, decoded on every <see cref="GetImage"/> call (like torchvision's ImageFolder): memory stays
/// small for large datasets, and decoding runs in the data loader's worker threads. Holds no mutable state, so it is
/// thread-safe.
/// </summary>
public sealed class FileImageDataset : IImageDataset
{
    private readonly string[] _paths;
    private readonly int[] _labels;

    public FileImageDataset(string name, IReadOnlyList<string> classNames, IReadOnlyList<string> paths, IReadOnlyList<int> labels)
    {
        if (paths.Count != labels.Count) throw new ArgumentException("paths and labels differ in length");
        Name = name;
        ClassNames = classNames;
        _paths = paths.ToArray();
        _labels = labels.ToArray();
    }

    public string Name { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public int Count => _paths.Length;
    public string PathOf(int index) => _paths[index];
    public int GetLabel(int index) => _labels[index];
    public RawImage GetImage(int index) => ImageDecoder.DecodeFile(_paths[index]);
}
