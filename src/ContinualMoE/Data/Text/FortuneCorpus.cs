using System.Text;

namespace ContinualMoE.Data.Text;

/// <summary>A corpus of plain-text documents with a fixed held-out part, for pretraining a small language model.</summary>
public sealed record TextCorpus(string Name, IReadOnlyList<string> Train, IReadOnlyList<string> HeldOut)
{
    public long TrainCharacters => Train.Sum(d => (long)d.Length);
}

/// <summary>
/// The fortune cookies of Debian's <c>fortunes</c> package (/usr/share/games/fortunes, BSD licence): about 15,000
/// quotations, aphorisms, poems and jokes in English, some 2 MB of real prose. Each file holds documents separated by
/// lines with a single "%". Every 20th document is held out for perplexity. Offensive fortunes are in the separate
/// fortunes-off package, which is not read.
/// </summary>
public static class FortuneCorpus
{
    public const string DebianPackage = "fortunes";
    public const string DefaultFolder = "/usr/share/games/fortunes";
    public const int HeldOutEvery = 20;

    /// <summary>Pictures, not prose: left out so the model learns text.</summary>
    private static readonly HashSet<string> Excluded = new(StringComparer.Ordinal) { "ascii-art" };

    /// <summary>Reads every fortune file of <paramref name="folder"/> in name order (the strfile indexes *.dat and
    /// the *.u8 links of the package are skipped). One-line error when the package is missing.</summary>
    public static TextCorpus Load(string folder = DefaultFolder)
    {
        if (!Directory.Exists(folder))
            throw ContinualMoEException.ForFile(folder,
                $"not found: the language-model corpus comes from Debian's '{DebianPackage}' package (apt-get install {DebianPackage})");
        var files = Directory.GetFiles(folder)
            .Where(f => Path.GetExtension(f) is "" && !Excluded.Contains(Path.GetFileName(f)))
            .OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal)
            .ToList();
        var documents = files.SelectMany(f => Split(File.ReadAllText(f, Encoding.UTF8))).ToList();
        if (documents.Count < HeldOutEvery)
            throw ContinualMoEException.ForFile(folder, $"holds only {documents.Count} fortunes; is the '{DebianPackage}' package complete?");
        var train = new List<string>();
        var heldOut = new List<string>();
        for (var i = 0; i < documents.Count; i++) (i % HeldOutEvery == HeldOutEvery - 1 ? heldOut : train).Add(documents[i]);
        return new TextCorpus($"{DebianPackage} ({files.Count} files, {documents.Count} fortunes)", train, heldOut);
    }

    /// <summary>The documents of one fortune file: text between lines that hold only "%", trimmed, empty ones dropped.
    /// Control characters other than newline and tab (a few fortunes underline by overstriking with backspaces) are removed.</summary>
    public static IEnumerable<string> Split(string text)
    {
        var current = new StringBuilder();
        var clean = new string(text.Replace("\r\n", "\n").Where(c => c is '\n' or '\t' || !char.IsControl(c)).ToArray());
        foreach (var line in clean.Split('\n'))
        {
            if (line == "%")
            {
                if (current.ToString().Trim() is { Length: > 0 } document) yield return document;
                current.Clear();
            }
            else current.Append(line).Append('\n');
        }
        if (current.ToString().Trim() is { Length: > 0 } last) yield return last;
    }
}
