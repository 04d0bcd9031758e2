namespace ContinualMoE;

/// <summary>
/// Writes files so that they appear only when complete: the content goes to a temporary file beside the target,
/// which is flushed and then renamed over the target. A crash leaves either the old file or the new one, never half of one.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> writeContent)
    {
        var fullPath = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(fullPath)!;
        Directory.CreateDirectory(directory);
        var temporary = Path.Combine(directory, $".{Path.GetFileName(fullPath)}.{Guid.NewGuid():N}{TemporarySuffix}");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                writeContent(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, fullPath, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary)) File.Delete(temporary);
        }
    }

    private const string TemporarySuffix = ".tmp";

    /// <summary>
    /// Deletes the temporary files that writers killed mid-write (SIGKILL, power loss) left in <paramref name="directory"/>
    /// (a checkpoint's can be as large as the checkpoint); returns their names. Only for a folder no other process is
    /// writing, e.g. a run folder being resumed.
    /// </summary>
    public static IReadOnlyList<string> RemoveLeftovers(string directory)
    {
        var leftovers = Directory.EnumerateFiles(directory, $".*{TemporarySuffix}").Select(Path.GetFileName).OfType<string>()
            .Where(name => LeftoverName.IsMatch(name)).ToList();
        foreach (var name in leftovers) File.Delete(Path.Combine(directory, name));
        return leftovers;
    }

    private static readonly System.Text.RegularExpressions.Regex LeftoverName = new($@"^\..+\.[0-9a-f]{{32}}{System.Text.RegularExpressions.Regex.Escape(TemporarySuffix)}$");

    public static void WriteAllText(string path, string text) =>
        Write(path, stream => { using var writer = new StreamWriter(stream, leaveOpen: true); writer.Write(text); });

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        var copy = bytes.ToArray();
        Write(path, stream => stream.Write(copy));
    }
}
