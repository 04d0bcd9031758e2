using ContinualMoE.Training;
using System.Text;
using System.Text.Json;
using ContinualMoE.Evaluation;

namespace ContinualMoE.Cli.Reporting;

/// <summary>
/// The output folder of one run. Every results file is written atomically (temporary file, then rename), so a crash
/// leaves complete files only; <c>epochs.jsonl</c> grows by whole lines.
/// </summary>
/// <remarks>
/// Reuse policy: an existing non-empty folder is refused unless <c>force</c> is set. With <c>force</c>, only the files
/// listed in the folder's manifest (<see cref="ManifestFileName"/>, which records every file this class hands out) are
/// deleted; anything else in the folder is left alone, because it was not written by us and may be the user's.
/// A file of ours that is not in an old manifest (e.g. a folder from an older version) is simply overwritten when
/// rewritten.
/// </remarks>
public sealed class RunFolder
{
    public const string ManifestFileName = "run_manifest.json";
    public const string ConfigFileName = "config.json";
    public const string AccuracyMatrixFileName = "accuracy_matrix.csv";
    public const string MetricsFileName = "metrics.json";
    public const string EpochLogFileName = "epochs.jsonl";

    private readonly SortedSet<string> _files = new(StringComparer.Ordinal);

    private RunFolder(string path) => Path = path;

    /// <summary>Absolute path of the folder.</summary>
    public string Path { get; }

    /// <summary>File names (relative to <see cref="Path"/>) this run has written or reserved.</summary>
    public IReadOnlyCollection<string> Files => _files;

    /// <summary>Creates (or, with <paramref name="force"/>, reclaims) the output folder of a run.</summary>
    public static RunFolder Create(string path, bool force = false)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        if (File.Exists(fullPath))
            throw ContinualMoEException.ForFile(fullPath, "is a file, not a folder; choose another output folder");

        if (Directory.Exists(fullPath) && Directory.EnumerateFileSystemEntries(fullPath).Any())
        {
            if (!force)
                throw ContinualMoEException.ForFile(fullPath,
                    "output folder exists and is not empty; choose another folder or pass --force to replace a previous run's results");
            DeletePreviousResults(fullPath);
        }

        Directory.CreateDirectory(fullPath);
        var folder = new RunFolder(fullPath);
        folder.SaveManifest();
        return folder;
    }

    /// <summary>
    /// Full path for a results file with the given plain name (e.g. a plot), registered in the manifest so that
    /// a forced rerun cleans it up. Use this for every file written into the folder.
    /// </summary>
    public string ResultPath(string fileName)
    {
        if (!IsPlainFileName(fileName) || fileName == ManifestFileName)
            throw new ContinualMoEException($"'{fileName}' is not a valid results file name (plain name, no folders)");
        // Registered before the file exists: if we crash mid-write the manifest already covers it.
        if (_files.Add(fileName)) SaveManifest();
        return System.IO.Path.Combine(Path, fileName);
    }

    /// <summary>Writes the resolved configuration (any JSON-serialisable object) as <c>config.json</c>.</summary>
    public void WriteConfig(object config)
    {
        ArgumentNullException.ThrowIfNull(config);
        // Serialised straight into the temporary file: if a property throws part-way, the old config.json survives.
        AtomicFile.Write(ResultPath(ConfigFileName), stream =>
        {
            JsonSerializer.Serialize(stream, config, config.GetType(), ReportJson.Indented);
            stream.WriteByte((byte)'\n');
        });
    }

    public void WriteAccuracyMatrix(AccuracyMatrix matrix)
    {
        ArgumentNullException.ThrowIfNull(matrix);
        AtomicFile.WriteAllText(ResultPath(AccuracyMatrixFileName), matrix.ToCsv());
    }

    /// <summary>Writes <c>metrics.json</c>: the metrics record, or a summary that contains it (with cost and speed).</summary>
    public void WriteMetrics(object metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        AtomicFile.WriteAllText(ResultPath(MetricsFileName), JsonSerializer.Serialize(metrics, metrics.GetType(), ReportJson.Indented) + "\n");
    }

    /// <summary>
    /// Appends one line to <c>epochs.jsonl</c>. The whole line goes out in one write and is flushed to disk, so readers
    /// (and a crash) see complete lines only. Rewriting the file atomically per epoch would also work but costs O(n).
    /// </summary>
    public void AppendEpoch(EpochRecord entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var path = ResultPath(EpochLogFileName);
        var line = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(entry, ReportJson.Compact) + "\n");
        using var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read);
        // If an earlier process died mid-line, start on a fresh line so the new entry stays parseable.
        if (stream.Length > 0)
        {
            stream.Seek(-1, SeekOrigin.End);
            if (stream.ReadByte() != '\n') line = [(byte)'\n', .. line];
        }
        stream.Seek(0, SeekOrigin.End);
        stream.Write(line);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// Drops the <c>epochs.jsonl</c> lines of tasks from <paramref name="firstTaskToDrop"/> on (and a torn last line):
    /// a run killed during a task logged some of its epochs, which the resumed run logs again.
    /// </summary>
    public void TruncateEpochLog(int firstTaskToDrop)
    {
        var path = System.IO.Path.Combine(Path, EpochLogFileName);
        if (!File.Exists(path)) return;
        var kept = new StringBuilder();
        var dropped = 0;
        foreach (var line in File.ReadAllText(path).Split('\n'))
        {
            if (line.Length == 0) continue;
            int? task = null;
            try
            {
                using var entry = JsonDocument.Parse(line);
                if (entry.RootElement.TryGetProperty("task", out var t) && t.TryGetInt32(out var value)) task = value;
            }
            catch (JsonException) { }
            if (task is int k && k < firstTaskToDrop) kept.Append(line).Append('\n');
            else dropped++;
        }
        if (dropped > 0) AtomicFile.WriteAllText(ResultPath(EpochLogFileName), kept.ToString());
    }

    private void SaveManifest()
    {
        var manifest = new Manifest(_files.ToArray());
        AtomicFile.WriteAllText(System.IO.Path.Combine(Path, ManifestFileName),
            JsonSerializer.Serialize(manifest, ReportJson.Indented) + "\n");
    }

    /// <summary>Opens the folder of an earlier run (for --resume): its manifest's files stay registered.</summary>
    public static RunFolder Open(string path)
    {
        var fullPath = System.IO.Path.GetFullPath(path);
        var manifest = ReadManifest(fullPath)
            ?? throw ContinualMoEException.ForFile(fullPath, $"not a run folder (no {ManifestFileName})");
        var folder = new RunFolder(fullPath);
        foreach (var name in manifest.Files.Where(IsPlainFileName)) folder._files.Add(name);
        return folder;
    }

    private static Manifest? ReadManifest(string folder)
    {
        var manifestPath = System.IO.Path.Combine(folder, ManifestFileName);
        if (!File.Exists(manifestPath)) return null;
        try
        {
            return JsonSerializer.Deserialize<Manifest>(File.ReadAllText(manifestPath), ReportJson.Indented) ?? new Manifest([]);
        }
        catch (JsonException e)
        {
            throw ContinualMoEException.ForFile(manifestPath, $"unreadable run manifest ({e.Message}); delete the folder by hand", e);
        }
    }

    private static void DeletePreviousResults(string folder)
    {
        // Nothing we know we wrote: leave every file alone.
        if (ReadManifest(folder) is not { } manifest) return;

        // Only plain names inside this folder: a hand-edited manifest must not make us delete anything elsewhere.
        foreach (var name in manifest.Files)
        {
            if (!IsPlainFileName(name)) continue;
            var file = System.IO.Path.Combine(folder, name);
            if (File.Exists(file)) File.Delete(file);
        }
        File.Delete(System.IO.Path.Combine(folder, ManifestFileName));
    }

    private static bool IsPlainFileName(string name) =>
        !string.IsNullOrWhiteSpace(name)
        && name == System.IO.Path.GetFileName(name)
        && name is not "." and not ".."
        && name.IndexOfAny(System.IO.Path.GetInvalidFileNameChars()) < 0
        && !name.Contains('\\');

    private sealed record Manifest(string[] Files);
}
