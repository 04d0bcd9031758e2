using System.Text.Json;
using System.Text.RegularExpressions;
using ContinualMoE.Checkpoints;
using ContinualMoE.Experiments;
using static TorchSharp.torch;

namespace ContinualMoE.Deployment;

/// <summary>
/// A model package on disk: a folder of versions <c>v0001/</c>, <c>v0002/</c>, ..., each holding <c>manifest.json</c>
/// and <c>state.safetensors</c> (the learner's state, <see cref="Training.IContinualLearner.State"/>). A version is
/// written into a hidden staging folder and renamed into place when complete, so a reader (or a process that was
/// killed mid-write) only ever sees whole versions; earlier versions stay until removed by hand.
/// </summary>
public static partial class ModelPackage
{
    public const string ManifestFileName = "manifest.json";
    public const string StateFileName = "state.safetensors";

    [GeneratedRegex(@"^v(\d{4,})$")]
    private static partial Regex VersionFolder();

    /// <summary>Complete versions in the package folder, ascending.</summary>
    public static IReadOnlyList<int> Versions(string packageFolder)
    {
        if (!Directory.Exists(packageFolder)) return [];
        return Directory.GetDirectories(packageFolder)
            .Select(d => VersionFolder().Match(Path.GetFileName(d)))
            .Where(m => m.Success)
            .Select(m => int.Parse(m.Groups[1].Value))
            .Where(v => File.Exists(Path.Combine(VersionPath(packageFolder, v), ManifestFileName)))
            .Order()
            .ToList();
    }

    public static bool Exists(string packageFolder) => Versions(packageFolder).Count > 0;

    public static string VersionPath(string packageFolder, int version) => Path.Combine(packageFolder, $"v{version:D4}");

    /// <summary>The latest (or the given) version's manifest, checked for format.</summary>
    public static PackageManifest ReadManifest(string packageFolder, int? version = null)
    {
        var versions = Versions(packageFolder);
        if (versions.Count == 0)
            throw ContinualMoEException.ForFile(packageFolder, "not a model package (no complete version folder v0001, v0002, ...); make one with continual-moe export or learn");
        var chosen = version ?? versions[^1];
        if (!versions.Contains(chosen)) throw ContinualMoEException.ForFile(packageFolder, $"has no version {chosen} (versions: {string.Join(", ", versions)})");
        var path = Path.Combine(VersionPath(packageFolder, chosen), ManifestFileName);
        PackageManifest manifest;
        try
        {
            var format = JsonDocument.Parse(File.ReadAllText(path)).RootElement.TryGetProperty("format", out var f) ? f.GetString() : null;
            if (format != PackageManifest.CurrentFormat)
                throw ContinualMoEException.ForFile(path, $"package format '{format}' is not {PackageManifest.CurrentFormat} (written by another continual-moe version)");
            manifest = JsonSerializer.Deserialize<PackageManifest>(File.ReadAllText(path), RunConfig.Json) ?? throw new JsonException("empty");
        }
        catch (JsonException e) { throw ContinualMoEException.ForFile(path, $"not a valid package manifest: {e.Message}", e); }
        if (manifest.Version != chosen) throw ContinualMoEException.ForFile(path, $"says version {manifest.Version} but lies in the folder of version {chosen}");
        return manifest;
    }

    /// <summary>The version's state, after checking the file against the manifest's SHA-256 (when it records one).</summary>
    public static Dictionary<string, Tensor> ReadState(string packageFolder, int version, string? expectedSha256 = null)
    {
        var path = Path.Combine(VersionPath(packageFolder, version), StateFileName);
        if (expectedSha256 is not null && FileSha256(path) is var actual && actual != expectedSha256)
            throw ContinualMoEException.ForFile(path, $"sha256 {actual[..12]}.. differs from the manifest's {expectedSha256[..Math.Min(12, expectedSha256.Length)]}..: the file was changed or damaged");
        return SafeTensorsFile.Read(path);
    }

    internal static string FileSha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    /// <summary>Writes <paramref name="manifest"/> (its version must be the next one) with <paramref name="state"/>,
    /// atomically (see <see cref="BeginVersion"/>).</summary>
    public static string WriteVersion(string packageFolder, PackageManifest manifest, IReadOnlyDictionary<string, Tensor> state)
    {
        using var writer = BeginVersion(packageFolder);
        return writer.Commit(manifest, state);
    }

    /// <summary>
    /// Starts writing the package's next version: takes the package's write lock (<see cref="LockFileName"/>, one writer
    /// at a time across processes), removes staging folders left by writers that died (none can be live, since a live
    /// writer holds the lock), and stages the version in a new hidden folder that <see cref="PackageWriter.Commit"/>
    /// fills and renames into place. Take it before loading the model to learn on: a process killed while learning or
    /// writing leaves only its staging folder, which the next writer removes.
    /// </summary>
    public static PackageWriter BeginVersion(string packageFolder)
    {
        Directory.CreateDirectory(packageFolder);
        var held = FileLock.TryAcquire(Path.Combine(packageFolder, LockFileName))
            ?? throw ContinualMoEException.ForFile(packageFolder, "is being written by another process (a learn, or a service's learning job); try again when it has finished");
        try
        {
            var removed = new List<string>();
            foreach (var stale in Directory.GetDirectories(packageFolder, ".staging-*"))
                if (TryDelete(stale)) removed.Add(Path.GetFileName(stale));
            var versions = Versions(packageFolder);
            var next = versions.Count == 0 ? 1 : versions[^1] + 1;
            var staging = Path.Combine(packageFolder, $".staging-v{next:D4}-{DateTime.UtcNow:yyyyMMddTHHmmss}-{Environment.ProcessId}");
            Directory.CreateDirectory(staging);
            return new PackageWriter(packageFolder, next, staging, removed, held);
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    /// <summary>The write lock's file in the package folder (it stays; the lock is the OS's, see <see cref="FileLock"/>).</summary>
    public const string LockFileName = ".write.lock";

    internal static bool TryDelete(string folder)
    {
        try { Directory.Delete(folder, recursive: true); return true; }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }
}

/// <summary>
/// The next version of a package being written (<see cref="ModelPackage.BeginVersion"/>): holds the package's write lock
/// and a staging folder until <see cref="Commit"/> renames the complete version into place. Disposing without a commit
/// (an error, a cancelled learn) removes the staging folder; a killed process leaves it for the next writer to remove.
/// </summary>
public sealed class PackageWriter : IDisposable
{
    private readonly string packageFolder;
    private readonly FileLock held;
    private bool committed;

    internal PackageWriter(string packageFolder, int version, string stagingFolder, IReadOnlyList<string> removedStaging, FileLock held)
    {
        this.packageFolder = packageFolder; this.held = held;
        Version = version; StagingFolder = stagingFolder; RemovedStaleStaging = removedStaging;
    }

    /// <summary>The version this writer writes (the latest complete one plus one).</summary>
    public int Version { get; }
    public string StagingFolder { get; }
    /// <summary>Staging folders of interrupted writers that were removed when this one began.</summary>
    public IReadOnlyList<string> RemovedStaleStaging { get; }

    /// <summary>Writes the version's state and manifest into the staging folder, then renames it to v&lt;version&gt;.</summary>
    public string Commit(PackageManifest manifest, IReadOnlyDictionary<string, Tensor> state)
    {
        if (committed) throw new InvalidOperationException("this package version is already written");
        if (manifest.Version != Version)
            throw ContinualMoEException.ForFile(packageFolder, $"cannot write version {manifest.Version}: the next version is {Version}");
        var statePath = Path.Combine(StagingFolder, ModelPackage.StateFileName);
        SafeTensorsFile.Write(statePath, state, new Dictionary<string, string> { ["format"] = manifest.Format });
        var recorded = manifest with { StateSha256 = ModelPackage.FileSha256(statePath) };
        File.WriteAllText(Path.Combine(StagingFolder, ModelPackage.ManifestFileName), JsonSerializer.Serialize(recorded, RunConfig.Json));
        var target = ModelPackage.VersionPath(packageFolder, Version);
        Directory.Move(StagingFolder, target);
        committed = true;
        return target;
    }

    public void Dispose()
    {
        if (!committed) ModelPackage.TryDelete(StagingFolder);
        held.Dispose();
    }
}
