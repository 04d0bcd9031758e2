using System.Text.Json;
using ContinualMoE.Data.Text;

namespace ContinualMoE.Experiments;

/// <summary>
/// The embedded default language model: a small GPT-2 pretrained here on the fortune cookies of Debian's
/// <c>fortunes</c> package (<see cref="FortuneCorpus"/>), built on first use into the cache and reused afterwards, so a
/// fresh machine needs no download. Like <see cref="DefaultBackbone"/>, the recipe is fixed here so every machine builds
/// the same model; changing it means a new <see cref="LanguageModelRecipe.Name"/>.
/// A cached folder is checked against the SHA-256 sums its pretraining.json recorded; a missing or damaged file makes
/// <see cref="EnsureFolder(IProgress{LanguageModelBuildProgress}, CancellationToken)"/> rebuild the folder (it is derived
/// data, and the rebuild gives the same files), after reporting why through the progress callback.
/// </summary>
public static class DefaultLanguageModel
{
    public static readonly LanguageModelRecipe Recipe = new()
    {
        Name = "gpt2-fortunes-v1",
    };

    /// <summary>Where the default model lives: $cache/language-models/&lt;recipe name&gt;.</summary>
    public static string CachePath => FolderFor(Recipe);

    public static string FolderFor(LanguageModelRecipe recipe) => Path.Combine(CacheDirectory.Sub("language-models"), recipe.Name);

    /// <summary>The default model's Hugging Face folder, pretrained from the <c>fortunes</c> corpus on first use
    /// (a few minutes on two cores) and reused afterwards.</summary>
    public static string EnsureFolder(IProgress<LanguageModelBuildProgress>? progress = null, CancellationToken cancellation = default) =>
        EnsureFolder(Recipe, CachePath, () => FortuneCorpus.Load(), progress, cancellation);

    /// <summary>
    /// <paramref name="folder"/> when it holds an intact build; otherwise builds <paramref name="recipe"/> on
    /// <paramref name="corpus"/> in a temporary folder beside it and renames that into place, so a crash never leaves
    /// a half-written model where a complete one is expected.
    /// </summary>
    public static string EnsureFolder(LanguageModelRecipe recipe, string folder, Func<TextCorpus> corpus,
        IProgress<LanguageModelBuildProgress>? progress = null, CancellationToken cancellation = default)
    {
        folder = Path.GetFullPath(folder);
        if (Directory.Exists(folder))
        {
            var damage = FindDamage(folder);
            if (damage is null) return folder;
            progress?.Report(new("cache", $"{damage}; rebuilding {folder}"));
        }
        var parent = Path.GetDirectoryName(folder)!;
        Directory.CreateDirectory(parent);
        var temporary = Path.Combine(parent, $".{Path.GetFileName(folder)}.{Guid.NewGuid():N}.tmp");
        try
        {
            progress?.Report(new("corpus", "reading the corpus"));
            LanguageModelPretraining.Build(recipe, corpus(), temporary, progress, cancellation);
            if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
            try
            {
                Directory.Move(temporary, folder);
            }
            catch (IOException) when (Directory.Exists(folder) && FindDamage(folder) is null)
            {
                // Another process finished the same build first; its files are as good as ours.
            }
            return folder;
        }
        finally
        {
            if (Directory.Exists(temporary)) Directory.Delete(temporary, recursive: true);
        }
    }

    /// <summary>The build report of a cached folder (null when it has none or it cannot be read).</summary>
    public static LanguageModelBuildReport? ReadReport(string folder)
    {
        var path = Path.Combine(folder, LanguageModelBuildReport.FileName);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<LanguageModelBuildReport>(File.ReadAllText(path));
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Null when every model file matches the SHA-256 recorded at build time; otherwise one line naming the
    /// first file that is missing or differs.</summary>
    public static string? FindDamage(string folder)
    {
        var report = ReadReport(folder);
        if (report?.FileSha256 is not { Count: > 0 } sums)
            return $"{Path.Combine(folder, LanguageModelBuildReport.FileName)} is missing or unreadable";
        foreach (var file in LanguageModelPretraining.ModelFiles)
        {
            var path = Path.Combine(folder, file);
            if (!File.Exists(path)) return $"{path} is missing";
            if (!sums.TryGetValue(file, out var expected) || LanguageModelPretraining.Sha256(path) != expected)
                return $"{path} differs from the file that was built (damaged?)";
        }
        return null;
    }
}
