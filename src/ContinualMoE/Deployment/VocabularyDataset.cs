using ContinualMoE.Data;

namespace ContinualMoE.Deployment;

/// <summary>A dataset whose labels are mapped into a model package's label vocabulary (local label l becomes
/// <c>labelOf[l]</c>); its class names are the vocabulary's.</summary>
public sealed class VocabularyDataset(IImageDataset inner, int[] labelOf, IReadOnlyList<string> vocabulary) : IImageDataset
{
    public string Name => inner.Name;
    public int Count => inner.Count;
    public IReadOnlyList<string> ClassNames => vocabulary;
    public int GetLabel(int index) => labelOf[inner.GetLabel(index)];
    public RawImage GetImage(int index) => inner.GetImage(index);
}

/// <summary>Unlabelled images to predict (label 0 throughout): decoded images held in memory, or files decoded lazily.</summary>
public sealed class UnlabelledImages : IImageDataset
{
    private readonly IReadOnlyList<RawImage>? images;
    private readonly IReadOnlyList<string> sources;

    private UnlabelledImages(IReadOnlyList<RawImage>? images, IReadOnlyList<string> sources) { this.images = images; this.sources = sources; }

    /// <summary>Already decoded images (the service decodes uploads first, so a corrupt one is refused before batching).</summary>
    public static UnlabelledImages FromImages(IReadOnlyList<RawImage> images, IReadOnlyList<string> sources) => new(images, sources);

    /// <summary>Image files, and every image file under the given folders (sorted by path).</summary>
    public static UnlabelledImages FromPaths(IEnumerable<string> paths)
    {
        var files = new List<string>();
        foreach (var path in paths)
        {
            if (Directory.Exists(path))
                files.AddRange(Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Where(Data.Loaders.ImageDecoder.IsImageFile).Order(StringComparer.Ordinal));
            else if (File.Exists(path)) files.Add(path);
            else throw ContinualMoEException.ForFile(path, "no such image file or folder");
        }
        if (files.Count == 0) throw new ContinualMoEException($"no image files in {string.Join(", ", paths)}");
        return new(null, files);
    }

    public string Name => "images";
    public int Count => sources.Count;
    public IReadOnlyList<string> ClassNames { get; } = ["?"];
    public string SourceOf(int index) => sources[index];
    public int GetLabel(int index) => 0;
    public RawImage GetImage(int index) => images?[index] ?? Data.Loaders.ImageDecoder.DecodeFile(sources[index]);
}
