using System.Text;

namespace ContinualMoE;

/// <summary>
/// An exclusive OS file lock (flock, through <see cref="FileShare.None"/>) held while the object lives. The kernel drops
/// it when the process dies however it dies (kill -9 included), so a crashed holder leaves no stale lock. The lock file
/// stays: deleting it while another process has it open would let two processes lock two different files.
/// </summary>
public sealed class FileLock : IDisposable
{
    private readonly FileStream stream;

    private FileLock(FileStream stream) => this.stream = stream;

    /// <summary>The lock, or null when another process (or another holder in this one) has it.</summary>
    public static FileLock? TryAcquire(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        FileStream stream;
        try { stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException) { return null; }
        // Who holds it, for people reading the folder; the lock itself is what counts.
        stream.SetLength(0);
        stream.Write(Encoding.UTF8.GetBytes($"{Environment.MachineName} {Environment.ProcessId} {DateTimeOffset.UtcNow:O}\n"));
        stream.Flush();
        return new FileLock(stream);
    }

    /// <summary>Whether some holder has the lock now.</summary>
    public static bool IsHeld(string path)
    {
        if (!File.Exists(path)) return false;
        using var probe = TryAcquire(path);
        return probe is null;
    }

    public void Dispose() => stream.Dispose();
}
