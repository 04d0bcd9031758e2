namespace ContinualMoE.Data;

/// <summary>Where and how <see cref="DatasetCatalog"/> finds a dataset.</summary>
public sealed record DatasetOptions
{
    /// <summary>Folder holding the dataset in its official layout; null = the download cache (or, for Fashion-MNIST, Debian's package).</summary>
    public string? Root { get; init; }

    /// <summary>Download cache; null = <see cref="Download.DatasetDownloader.DefaultCacheDirectory"/>.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Download CIFAR/MNIST/Fashion-MNIST into the cache if they are not there.</summary>
    public bool Download { get; init; }

    /// <summary>Replaces the official base URL (a mirror).</summary>
    public string? DownloadBaseUrl { get; init; }

    /// <summary>For image folders without a train/test split: the fraction of each class held out for testing.</summary>
    public double TestFraction { get; init; } = Loaders.ImageFolderLoader.DefaultTestFraction;

    /// <summary>For image folders without a train/test split: seeds the split.</summary>
    public int SplitSeed { get; init; }

    /// <summary>For image folders without a train/test split: per-class (default) or the official HiDe-Prompt
    /// torch random_split (see ImageFolderLoader).</summary>
    public Loaders.ImageFolderLoader.Splitting Splitting { get; init; }

    /// <summary>For image folders: a train list and a test list naming the split (see ImageFolderLoader.LoadFromLists).</summary>
    public IReadOnlyList<string>? SplitFiles { get; init; }

    /// <summary>Parameters of the "generated" benchmark.</summary>
    public GeneratedOptions Generated { get; init; } = new();
}

/// <summary>Parameters of <see cref="Generated.GeneratedBenchmark"/>; <see cref="Upstream"/> selects the pretraining part.</summary>
public sealed record GeneratedOptions
{
    public int Seed { get; init; }
    public int UpstreamClasses { get; init; } = 50;
    public int ContinualClasses { get; init; } = 20;
    public int TrainPerClass { get; init; } = 100;
    public int TestPerClass { get; init; } = 50;
    public int ImageSize { get; init; } = 32;

    /// <summary>Return the upstream (pretraining) classes instead of the continual ones.</summary>
    public bool Upstream { get; init; }
}
