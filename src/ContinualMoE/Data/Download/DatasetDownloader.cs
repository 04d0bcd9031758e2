using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace ContinualMoE.Data.Download;

/// <summary>
/// Downloads datasets into a cache folder so that a file only ever appears complete and verified:
/// <list type="number">
/// <item>each file streams into <c>name.partial</c> (a leftover from an interrupted run is simply overwritten),</item>
/// <item>its MD5 is checked; on a mismatch the partial file is deleted and an error names the URL,</item>
/// <item>it is renamed to its final name;</item>
/// <item>a .tar.gz is unpacked into a temporary folder beside the target, its top-level entries are moved into place,
/// and the archive is deleted.</item>
/// </list>
/// A dataset counts as present when its <see cref="RemoteDataset.ReadyMarker"/> exists.
/// </summary>
public sealed class DatasetDownloader
{
    // One client for the process: HttpClient is meant to be reused (it pools connections).
    private static readonly Lazy<HttpClient> SharedClient = new(() => new HttpClient { Timeout = TimeSpan.FromHours(2) });
    private readonly HttpClient _http;
    private readonly string? _baseUrlOverride;

    /// <param name="cacheDirectory">Defaults to <see cref="DefaultCacheDirectory"/>.</param>
    /// <param name="baseUrlOverride">Replaces every dataset's base URL (a mirror, or a loopback server in tests).</param>
    /// <param name="http">The client to use; one with a generous timeout is created if null.</param>
    public DatasetDownloader(string? cacheDirectory = null, string? baseUrlOverride = null, HttpClient? http = null)
    {
        CacheDirectory = Path.GetFullPath(cacheDirectory ?? DefaultCacheDirectory);
        _baseUrlOverride = baseUrlOverride;
        _http = http ?? SharedClient.Value;
    }

    /// <summary>The <c>datasets</c> folder of the project's cache (<see cref="ContinualMoE.CacheDirectory"/>).</summary>
    public static string DefaultCacheDirectory => ContinualMoE.CacheDirectory.Sub("datasets");

    public string CacheDirectory { get; }

    /// <summary>The folder for <paramref name="dataset"/> inside the cache (it may not exist yet).</summary>
    public string FolderOf(RemoteDataset dataset) => Path.Combine(CacheDirectory, dataset.Name);

    public bool IsPresent(RemoteDataset dataset) => File.Exists(Path.Combine(FolderOf(dataset), dataset.ReadyMarker));

    /// <summary>Downloads a dataset from <see cref="DatasetSources"/> by name unless it is present; returns its folder.</summary>
    public string Ensure(string name) =>
        DatasetSources.All.TryGetValue(name, out var dataset)
            ? Ensure(dataset)
            : throw new ContinualMoEException($"no download source for dataset '{name}'; downloadable: {string.Join(", ", DatasetSources.All.Keys)}");

    /// <summary>Downloads (and unpacks) every file of <paramref name="dataset"/> unless it is present; returns its folder.</summary>
    public string Ensure(RemoteDataset dataset)
    {
        var folder = FolderOf(dataset);
        if (IsPresent(dataset)) return folder;
        Directory.CreateDirectory(folder);
        var baseUrl = _baseUrlOverride ?? dataset.BaseUrl;
        if (!baseUrl.EndsWith('/')) baseUrl += "/";
        foreach (var file in dataset.Files)
        {
            var target = Path.Combine(folder, file.FileName);
            if (!File.Exists(target)) DownloadFile(new Uri(new Uri(baseUrl), file.FileName), target, file.Md5);
            if (file.ExtractTarGz)
            {
                try { ExtractTarGz(target, folder); }
                catch (ContinualMoEException e)
                {
                    // A corrupt archive must not stay in the cache, or every later run would fail on it again.
                    File.Delete(target);
                    throw new ContinualMoEException($"{e.Message} (deleted it from the cache: the next run downloads it again)", e.InnerException);
                }
                File.Delete(target);
            }
        }
        if (!IsPresent(dataset))
            throw ContinualMoEException.ForFile(Path.Combine(folder, dataset.ReadyMarker),
                "still missing after download: the archive does not have the expected layout");
        return folder;
    }

    /// <summary>Fetches <paramref name="url"/> to <paramref name="target"/> via <c>target.partial</c>, verifying the MD5 if given.</summary>
    public void DownloadFile(Uri url, string target, string? md5)
    {
        var partial = target + ".partial";
        try
        {
            string actual;
            using (var request = new HttpRequestMessage(HttpMethod.Get, url))
            using (var response = SendOrThrow(request, url))
            using (var body = response.Content.ReadAsStream())
            using (var output = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
            using (var hash = IncrementalHash.CreateHash(HashAlgorithmName.MD5))
            {
                var buffer = new byte[1 << 16];
                int read;
                while ((read = body.Read(buffer)) > 0)
                {
                    hash.AppendData(buffer, 0, read);
                    output.Write(buffer, 0, read);
                }
                output.Flush(flushToDisk: true);
                actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            }
            if (md5 != null && !string.Equals(actual, md5, StringComparison.OrdinalIgnoreCase))
                throw new ContinualMoEException($"{url}: checksum mismatch (md5 {actual}, expected {md5}); the download was discarded");
            File.Move(partial, target, overwrite: true);
        }
        catch (IOException e)
        {
            throw new ContinualMoEException($"{url}: download failed: {e.Message}", e);
        }
        finally
        {
            if (File.Exists(partial)) File.Delete(partial);
        }
    }

    private HttpResponseMessage SendOrThrow(HttpRequestMessage request, Uri url)
    {
        HttpResponseMessage response;
        try
        {
            response = _http.Send(request, HttpCompletionOption.ResponseHeadersRead);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            throw new ContinualMoEException($"{url}: download failed: {e.Message}", e);
        }
        if (!response.IsSuccessStatusCode)
        {
            var status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
            response.Dispose();
            throw new ContinualMoEException($"{url}: download failed: HTTP {status}");
        }
        return response;
    }

    /// <summary>
    /// Unpacks into a temporary folder inside <paramref name="destination"/> (same file system, so moves are renames),
    /// then moves each top-level entry into place. An entry that already exists is left alone.
    /// </summary>
    public static void ExtractTarGz(string archive, string destination)
    {
        var temporary = Path.Combine(destination, $".extract-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temporary);
        try
        {
            try
            {
                using var file = File.OpenRead(archive);
                using var gzip = new GZipStream(file, CompressionMode.Decompress);
                // TarFile refuses entries that would land outside the target folder.
                TarFile.ExtractToDirectory(gzip, temporary, overwriteFiles: false);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or IOException or FormatException)
            {
                throw ContinualMoEException.ForFile(archive, $"cannot unpack archive: {e.Message.ReplaceLineEndings(" ")}", e);
            }
            foreach (var entry in Directory.EnumerateFileSystemEntries(temporary))
            {
                var target = Path.Combine(destination, Path.GetFileName(entry));
                if (Directory.Exists(target) || File.Exists(target)) continue;
                if (Directory.Exists(entry)) Directory.Move(entry, target);
                else File.Move(entry, target);
            }
        }
        finally
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        }
    }
}
