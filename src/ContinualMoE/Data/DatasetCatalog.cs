using ContinualMoE.Data.Download;
using ContinualMoE.Data.Generated;
using ContinualMoE.Data.Loaders;

namespace ContinualMoE.Data;

/// <summary>Named datasets: <c>DatasetCatalog.Load("cifar100", options)</c>.</summary>
public static class DatasetCatalog
{
    /// <summary>Where Debian's <c>dataset-fashion-mnist</c> package installs the IDX files.</summary>
    public const string DebianFashionMnistFolder = "/usr/share/datasets/fashion-mnist";

    private static readonly Dictionary<string, Func<DatasetOptions, DatasetSplits>> Loaders = new(StringComparer.OrdinalIgnoreCase)
    {
        ["cifar10"] = o => CifarLoader.LoadCifar10(Locate(o, DatasetSources.Cifar10)),
        ["cifar100"] = o => CifarLoader.LoadCifar100(Locate(o, DatasetSources.Cifar100)),
        ["mnist"] = o => IdxLoader.Load(Locate(o, DatasetSources.Mnist), "mnist", IdxLoader.MnistClassNames),
        ["fashion-mnist"] = o => IdxLoader.Load(LocateFashionMnist(o), "fashion-mnist", IdxLoader.FashionMnistClassNames),
        ["imagenet-r"] = o => ImageFolderLoader.Load(RequireRoot(o, "imagenet-r"), "imagenet-r", o.TestFraction, o.SplitSeed, o.SplitFiles, o.Splitting),
        ["cub200"] = o => Cub200Loader.Load(RequireRoot(o, "cub200")),
        ["image-folder"] = o => ImageFolderLoader.Load(RequireRoot(o, "image-folder"), Path.GetFileName(Path.TrimEndingDirectorySeparator(o.Root!)), o.TestFraction, o.SplitSeed, o.SplitFiles, o.Splitting),
        ["generated"] = LoadGenerated,
    };

    public static IReadOnlyList<string> Names { get; } =
        ["cifar10", "cifar100", "mnist", "fashion-mnist", "imagenet-r", "cub200", "image-folder", "generated"];

    public static DatasetSplits Load(string name, DatasetOptions? options = null) => Loader(name)(options ?? new DatasetOptions());

    /// <summary>Throws the unknown-name error (listing the valid names) unless <paramref name="name"/> is a dataset.</summary>
    public static void EnsureKnown(string name) => Loader(name);

    private static Func<DatasetOptions, DatasetSplits> Loader(string name) =>
        Loaders.TryGetValue(name.Trim(), out var load)
            ? load
            : throw new ContinualMoEException($"unknown dataset '{name}'; valid names: {string.Join(", ", Names)}");

    private static string Locate(DatasetOptions options, RemoteDataset source)
    {
        if (options.Root != null) return options.Root;
        var downloader = new DatasetDownloader(options.CacheDirectory, options.DownloadBaseUrl);
        if (downloader.IsPresent(source)) return downloader.FolderOf(source);
        if (options.Download) return downloader.Ensure(source);
        throw new ContinualMoEException(
            $"dataset '{source.Name}' is not in the cache {downloader.FolderOf(source)}: enable downloading (continual-moe: --download) or give its folder as the root (--data-root)");
    }

    private static string LocateFashionMnist(DatasetOptions options)
    {
        if (options.Root == null && Directory.Exists(DebianFashionMnistFolder)
            && File.Exists(Path.Combine(DebianFashionMnistFolder, "t10k-labels-idx1-ubyte.gz")))
            return DebianFashionMnistFolder;
        return Locate(options, DatasetSources.FashionMnist);
    }

    private static string RequireRoot(DatasetOptions options, string name) =>
        options.Root ?? throw new ContinualMoEException($"dataset '{name}' cannot be downloaded automatically: give its folder as the root");

    private static DatasetSplits LoadGenerated(DatasetOptions options)
    {
        var g = options.Generated;
        var benchmark = GeneratedBenchmark.Create(g.Seed, g.UpstreamClasses, g.ContinualClasses, g.TrainPerClass, g.TestPerClass, g.ImageSize);
        return g.Upstream ? benchmark.Upstream : benchmark.Continual;
    }
}
