namespace ContinualMoE;

/// <summary>Where downloaded datasets and the cached default backbone live: $CONTINUAL_MOE_CACHE, else
/// $XDG_CACHE_HOME/continual-moe, else ~/.cache/continual-moe.</summary>
public static class CacheDirectory
{
    public static string Root
    {
        get
        {
            var explicitRoot = Environment.GetEnvironmentVariable("CONTINUAL_MOE_CACHE");
            if (!string.IsNullOrWhiteSpace(explicitRoot)) return Path.GetFullPath(explicitRoot);
            var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            var baseDir = !string.IsNullOrWhiteSpace(xdg) ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(baseDir, "continual-moe");
        }
    }

    public static string Sub(string name) => Path.Combine(Root, name);
}
