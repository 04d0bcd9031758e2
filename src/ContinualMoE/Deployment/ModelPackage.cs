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

    public static Dictionary<string, Tensor> ReadState(string packageFolder, int version) =>
        SafeTensorsFile.Read(Path.Combine(VersionPath(packageFolder, version), StateFileName));

    /// <summary>Writes <paramref name="manifest"/> (its version must be the next one) with <paramref name="state"/>,
    /// atomically: staged in a hidden folder, renamed into place only when both files are complete.</summary>
    public static string WriteVersion(string packageFolder, PackageManifest manifest, IReadOnlyDictionary<string, Tensor> state)
    {
        Directory.CreateDirectory(packageFolder);
        var versions = Versions(packageFolder);
        var expected = versions.Count == 0 ? 1 : versions[^1] + 1;
        if (manifest.Version != expected)
            throw ContinualMoEException.ForFile(packageFolder, $"cannot write version {manifest.Version}: the next version is {expected} (another process wrote one meanwhile?)");
        // Staging folders of writers that died are left over; they are never read, and removed here.
        foreach (var stale in Directory.GetDirectories(packageFolder, ".staging-*")) TryDelete(stale);
        var staging = Path.Combine(packageFolder, $".staging-v{manifest.Version:D4}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            SafeTensorsFile.Write(Path.Combine(staging, StateFileName), state, new Dictionary<string, string> { ["format"] = manifest.Format });
            File.WriteAllText(Path.Combine(staging, ManifestFileName), JsonSerializer.Serialize(manifest, RunConfig.Json));
            var target = VersionPath(packageFolder, manifest.Version);
            Directory.Move(staging, target);
            return target;
        }
        catch
        {
            TryDelete(staging);
            throw;
        }
    }

    private static void TryDelete(string folder)
    {
        try { Directory.Delete(folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
