namespace ContinualMoE.Data.Download;

/// <summary>A file to fetch: its name under the base URL, its MD5 as published (null = not checked), and whether it is a .tar.gz to unpack.</summary>
public sealed record RemoteFile(string FileName, string? Md5, bool ExtractTarGz = false);

/// <summary>
/// A downloadable dataset. Files land in <c>&lt;cache&gt;/&lt;Name&gt;/</c>; an archive is unpacked there and deleted.
/// <see cref="ReadyMarker"/> (a path relative to that folder) exists exactly when the dataset is complete.
/// </summary>
public sealed record RemoteDataset(string Name, string BaseUrl, IReadOnlyList<RemoteFile> Files, string ReadyMarker);

/// <summary>
/// The official sources. Checksums are the MD5s published by the dataset authors (CIFAR page, Fashion-MNIST README)
/// and used by torchvision (MNIST, whose original host yann.lecun.com is unreliable, so torchvision's S3 mirror is used).
/// </summary>
public static class DatasetSources
{
    public static readonly RemoteDataset Cifar10 = new("cifar10", "https://www.cs.toronto.edu/~kriz/",
        [new RemoteFile("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530", ExtractTarGz: true)],
        "cifar-10-batches-bin/test_batch.bin");

    public static readonly RemoteDataset Cifar100 = new("cifar100", "https://www.cs.toronto.edu/~kriz/",
        [new RemoteFile("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8", ExtractTarGz: true)],
        "cifar-100-binary/test.bin");

    public static readonly RemoteDataset Mnist = new("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/",
        [
            new RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            new RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            new RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            new RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ],
        "t10k-labels-idx1-ubyte.gz");

    public static readonly RemoteDataset FashionMnist = new("fashion-mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        [
            new RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            new RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            new RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            new RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ],
        "t10k-labels-idx1-ubyte.gz");

    public static readonly IReadOnlyDictionary<string, RemoteDataset> All =
        new[] { Cifar10, Cifar100, Mnist, FashionMnist }.ToDictionary(d => d.Name, StringComparer.OrdinalIgnoreCase);
}
