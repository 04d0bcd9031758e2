namespace ContinualMoE;

/// <summary>Memory the process can still use: MemAvailable of /proc/meminfo on Linux, else what the .NET GC reports.</summary>
public static class AvailableMemory
{
    /// <summary>Bytes available and where the figure came from.</summary>
    public static (long Bytes, string Source) Query()
    {
        const string meminfo = "/proc/meminfo";
        try
        {
            if (File.Exists(meminfo))
            {
                foreach (var line in File.ReadLines(meminfo))
                {
                    if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && long.TryParse(parts[1], out var kilobytes))
                        return (kilobytes * 1024, "MemAvailable in /proc/meminfo");
                }
            }
        }
        catch (IOException)
        {
            // fall through to the GC's figure
        }
        return (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, "the .NET runtime's available memory");
    }

    public static string Format(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):0.0} GiB" : $"{bytes / (double)(1L << 20):0.0} MiB";
}
