using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using ContinualMoE.Data;
using ContinualMoE.Data.Download;

namespace ContinualMoE.Tests.Data;

public class DatasetDownloaderTests : IDisposable
{
    private readonly string _cache = TestFiles.TempFolder("cmoe-cache-");
    private readonly LoopbackFileServer _server = new();

    public void Dispose()
    {
        _server.Dispose();
        Directory.Delete(_cache, recursive: true);
    }

    private static string Md5(byte[] data) => Convert.ToHexStringLower(MD5.HashData(data));

    private static byte[] TarGz(params (string Name, byte[] Content)[] entries)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true))
            foreach (var (name, content) in entries)
                tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content) });
        return output.ToArray();
    }

    private RemoteDataset IdxLike(byte[] content, string? md5) =>
        new("tiny", "https://unused.invalid/", [new RemoteFile("a.gz", md5), new RemoteFile("b.gz", null)], "b.gz");

    [Fact]
    public void DownloadsVerifiesAndSkipsWhenPresent()
    {
        byte[] a = [1, 2, 3, 4], b = [5, 6];
        _server.Files["a.gz"] = a;
        _server.Files["b.gz"] = b;
        var downloader = new DatasetDownloader(_cache, _server.BaseUrl);
        var folder = downloader.Ensure(IdxLike(a, Md5(a)));
        Assert.Equal(a, File.ReadAllBytes(Path.Combine(folder, "a.gz")));
        Assert.Equal(b, File.ReadAllBytes(Path.Combine(folder, "b.gz")));
        Assert.Empty(Directory.GetFiles(folder, "*.partial"));
        var requests = _server.Requests;
        downloader.Ensure(IdxLike(a, Md5(a)));
        Assert.Equal(requests, _server.Requests);
    }

    [Fact]
    public void ChecksumMismatchLeavesNothingInTheCache()
    {
        _server.Files["a.gz"] = [9, 9, 9];
        _server.Files["b.gz"] = [1];
        var downloader = new DatasetDownloader(_cache, _server.BaseUrl);
        var error = Assert.Throws<ContinualMoEException>(() => downloader.Ensure(IdxLike([], Md5([1, 2, 3]))));
        Assert.Contains("checksum mismatch", error.Message);
        Assert.Contains(_server.BaseUrl + "a.gz", error.Message);
        Assert.Empty(Directory.EnumerateFiles(_cache, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void PartialLeftoverIsReplacedAndMissingFileIsReported()
    {
        byte[] a = [7, 7, 7, 7, 7];
        _server.Files["a.gz"] = a;
        _server.Files["b.gz"] = [0];
        var downloader = new DatasetDownloader(_cache, _server.BaseUrl);
        var folder = Directory.CreateDirectory(Path.Combine(_cache, "tiny")).FullName;
        File.WriteAllBytes(Path.Combine(folder, "a.gz.partial"), [7, 7]); // an interrupted earlier run
        downloader.Ensure(IdxLike(a, Md5(a)));
        Assert.Equal(a, File.ReadAllBytes(Path.Combine(folder, "a.gz")));
        Assert.False(File.Exists(Path.Combine(folder, "a.gz.partial")));

        var missing = new RemoteDataset("other", "x", [new RemoteFile("nope.bin", null)], "nope.bin");
        var error = Assert.Throws<ContinualMoEException>(() => downloader.Ensure(missing));
        Assert.Contains("404", error.Message);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(_cache, "other")));
    }

    [Fact]
    public void CifarArchiveIsExtractedIntoPlaceAndLoadable()
    {
        var record = new byte[3073];
        record[0] = 4;
        var entries = Enumerable.Range(1, 5).Select(i => ($"cifar-10-batches-bin/data_batch_{i}.bin", record))
            .Append(("cifar-10-batches-bin/test_batch.bin", record))
            .Append(("cifar-10-batches-bin/batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"u8.ToArray()))
            .ToArray();
        var archive = TarGz(entries);
        _server.Files["cifar-10-binary.tar.gz"] = archive;
        var source = DatasetSources.Cifar10 with { Files = [new RemoteFile("cifar-10-binary.tar.gz", Md5(archive), ExtractTarGz: true)] };
        var folder = new DatasetDownloader(_cache, _server.BaseUrl).Ensure(source);
        Assert.True(File.Exists(Path.Combine(folder, "cifar-10-batches-bin", "test_batch.bin")));
        Assert.False(File.Exists(Path.Combine(folder, "cifar-10-binary.tar.gz")));
        Assert.Empty(Directory.GetDirectories(folder, ".extract-*"));

        var data = DatasetCatalog.Load("cifar10", new DatasetOptions { CacheDirectory = _cache });
        Assert.Equal(5, data.Train.Count);
        Assert.Equal("e", data.Train.ClassNames[data.Train.GetLabel(0)]);
    }

    /// <summary>A corrupt .tar.gz (its MD5 unknown, or published wrong) fails with one line naming the archive, leaves
    /// no extracted entry, temporary folder or the archive itself behind, and fails the same way again.</summary>
    [Theory]
    [InlineData("truncated")]     // cut after the first entries were unpacked
    [InlineData("not-gzip")]      // random bytes
    [InlineData("garbage-tar")]   // valid gzip of bytes that are no tar
    public void CorruptArchiveFailsWithOneLineAndLeavesNothingHalfExtracted(string corruption)
    {
        var random = new Random(3);
        byte[] Noise(int n) { var b = new byte[n]; random.NextBytes(b); return b; }
        var archive = TarGz(Enumerable.Range(1, 4).Select(i => ($"cifar-10-batches-bin/data_batch_{i}.bin", Noise(64 * 1024))).ToArray());
        var corrupt = corruption switch
        {
            "truncated" => archive[..(archive.Length * 3 / 5)],
            "not-gzip" => Noise(4096),
            _ => GzipOf(Noise(8192)),
        };
        _server.Files["cifar-10-binary.tar.gz"] = corrupt;
        var source = DatasetSources.Cifar10 with { Files = [new RemoteFile("cifar-10-binary.tar.gz", null, ExtractTarGz: true)] };
        var downloader = new DatasetDownloader(_cache, _server.BaseUrl);
        var folder = downloader.FolderOf(source);
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var error = Assert.Throws<ContinualMoEException>(() => downloader.Ensure(source));
            Assert.Contains(Path.Combine(folder, "cifar-10-binary.tar.gz"), error.Message);
            Assert.Contains("cannot unpack archive", error.Message);
            Assert.DoesNotContain('\n', error.Message);
            Assert.Empty(Directory.EnumerateFileSystemEntries(folder));
            Assert.False(downloader.IsPresent(source));
        }
    }

    private static byte[] GzipOf(byte[] content)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(content);
        return output.ToArray();
    }

    [Fact]
    public void CatalogRejectsUnknownNamesAndMissingData()
    {
        var error = Assert.Throws<ContinualMoEException>(() => DatasetCatalog.Load("cifar1000", new DatasetOptions()));
        Assert.Contains("cifar100", error.Message);
        Assert.Contains("generated", error.Message);
        Assert.Contains("not in the cache", Assert.Throws<ContinualMoEException>(
            () => DatasetCatalog.Load("mnist", new DatasetOptions { CacheDirectory = _cache })).Message);
        Assert.Contains("root", Assert.Throws<ContinualMoEException>(() => DatasetCatalog.Load("imagenet-r")).Message);
        var generated = DatasetCatalog.Load("generated", new DatasetOptions { Generated = new GeneratedOptions { ContinualClasses = 4, TrainPerClass = 2, TestPerClass = 1 } });
        Assert.Equal(8, generated.Train.Count);
        Assert.Equal(4, generated.Test.ClassNames.Count);
    }
}
