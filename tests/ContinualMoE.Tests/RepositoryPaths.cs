namespace ContinualMoE.Tests;

/// <summary>Folders of the repository, found upwards from the test binaries.</summary>
public static class RepositoryPaths
{
    public static string Configs { get; } = Find("configs");
    /// <summary>The test fixtures folder in the source tree (where fixture writers put their files).</summary>
    public static string Fixtures { get; } = Path.Combine(Path.GetDirectoryName(Find("configs"))!, "tests", "ContinualMoE.Tests", "Fixtures");

    private static string Find(string folder)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, folder)) && File.Exists(Path.Combine(dir.FullName, "ContinualMoE.sln")))
                return Path.Combine(dir.FullName, folder);
        throw new DirectoryNotFoundException($"{folder}/ not found above {AppContext.BaseDirectory}");
    }
}
